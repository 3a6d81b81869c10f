"""Controllers: strategies that propose children of a search space (ask) and learn from them (tell)."""

from nas.controllers import (  # noqa: F401  (imported to register the built-in controllers)
    evolution,
    optuna_samplers,  # tpe, nsga2
    random_search,
    rl,  # rl: REINFORCE on an LSTM policy
    weight_sharing,  # weight-sharing: a supernet scores, the best train from scratch
)
from nas.controllers.base import (
    CONTROLLERS,
    Controller,
    Exhausted,
    Observation,
    Proposal,
    make_controller,
    register_controller,
)

__all__ = ["CONTROLLERS", "Controller", "Exhausted", "Observation", "Proposal", "make_controller", "register_controller"]
