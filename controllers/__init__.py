"""Controllers: strategies that propose children of a search space (ask) and learn from them (tell)."""

from nas.controllers.base import CONTROLLERS, Controller, Exhausted, Observation, Proposal, make_controller, register_controller
from nas.controllers import evolution, random_search  # noqa: F401  (register the built-in nas.controllers)
from nas.controllers import optuna_samplers  # noqa: F401  (tpe, nsga2)
from nas.controllers import rl  # noqa: F401  (rl: REINFORCE on an LSTM policy)
from nas.controllers import weight_sharing  # noqa: F401  (weight-sharing: a supernet scores, the best train from scratch)

__all__ = ["CONTROLLERS", "Controller", "Exhausted", "Observation", "Proposal", "make_controller", "register_controller"]
