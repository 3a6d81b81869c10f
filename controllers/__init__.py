"""Controllers: strategies that propose children of a search space (ask) and learn from them (tell).

The contract is nas.controllers.base (Controller, make_controller, register_controller). Here only
the registry: every built-in controller's name with the module that defines it, imported on first
use, so listing the names (`nas --help`) imports neither torch nor Optuna.
"""

from nas.registry import Registry

CONTROLLERS: Registry[type] = Registry("controller")
CONTROLLERS.declare("nas.controllers.random_search", "random")
CONTROLLERS.declare("nas.controllers.evolution", "evolution")
CONTROLLERS.declare("nas.controllers.optuna_samplers", "tpe", "nsga2")
CONTROLLERS.declare("nas.controllers.rl", "rl")  # REINFORCE on an LSTM policy
CONTROLLERS.declare("nas.controllers.weight_sharing", "weight-sharing")  # a supernet scores, the best train from scratch

__all__ = ["CONTROLLERS"]
