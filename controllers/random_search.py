"""Random search: uniform over the space's architectures, honouring the cost limits."""

from __future__ import annotations

from nas.controllers.base import Controller, register_controller


@register_controller("random")
class RandomSearch(Controller):
    """Every child drawn independently and uniformly."""

    def propose(self) -> list[int]:
        return self.sample_within_limits()
