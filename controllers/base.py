"""The controller contract: ask for a child, tell its result, save and restore the whole state.

A controller works on a space's decision sequence (lists of option indices), so one
implementation serves every space. Objectives are named (nas.objectives); "accuracy" is maximised,
cost objectives ("macs", "params") are minimised. Everything random goes through the controller's
own numpy Generator, so the same seed gives the same decisions, and state_dict() carries the
generator's state so a resumed search continues where it stopped.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from nas.arch import Arch
from nas.controllers import CONTROLLERS
from nas.objectives import OBJECTIVES, objective_vector
from nas.outcome import OK, Outcome
from nas.phase import Phase
from nas.space.search_space import SearchSpace


class Exhausted(Exception):
    """The controller has nothing more to propose (the search ends once the running children finish)."""


def register_controller(name: str) -> Callable[[type[Controller]], type[Controller]]:
    """Class decorator: make a controller available as `--controller name`."""
    def add(cls: type[Controller]) -> type[Controller]:
        cls.name = name
        return CONTROLLERS.add(name, cls)
    return add


def make_controller(name: str, space: SearchSpace, **kwargs: Any) -> Controller:
    """Instantiate a registered controller, its options checked by name and type; errors list what is known."""
    return CONTROLLERS[name](space, **check_options(name, kwargs))


# Options of every controller that a search sets from its own flags, never from --controller-option.
SEARCH_WIDE_OPTIONS = {"seed": "--seed", "objectives": "--objectives", "max_macs": "--max-macs", "max_params": "--max-params"}


def controller_options(name: str) -> dict[str, tuple[Any, Any]]:
    """The keyword options of a registered controller, its bases' included: name -> (type, default)."""
    options: dict[str, tuple[Any, Any]] = {}
    for klass in reversed(CONTROLLERS[name].__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        hints = typing.get_type_hints(init)
        for param in inspect.signature(init).parameters.values():
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                options[param.name] = (hints.get(param.name, Any), param.default)
    return options


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options converted to their declared types (an int is a float, nothing else is coerced); one-line errors."""
    known = controller_options(name)
    checked = {}
    for key, value in options.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            own = sorted(k for k in known if k not in SEARCH_WIDE_OPTIONS) or ["none"]
            raise ValueError(f"controller {name} has no option {key!r} ({hint}its options: {', '.join(own)})")
        hint = known[key][0]
        try:
            checked[key] = TypeAdapter(hint).validate_python(value, strict=True)
        except ValidationError as err:
            want = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise ValueError(f"controller {name} option {key}={value!r}: {err.errors()[0]['msg'].lower()} "
                             f"(expected {want})") from None
    return checked


@dataclass
class Proposal:
    """One child to train: its id within the search, decision indices and architecture."""

    trial_id: int
    values: list[int]
    arch: Arch


@dataclass
class Observation:
    """A finished child: its decisions, objective values (None when it failed) and how it ended."""

    trial_id: int
    values: list[int]
    objectives: list[float] | None
    outcome: Outcome = OK
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"trial_id": self.trial_id, "values": self.values, "objectives": self.objectives,
                "status": str(self.outcome), "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> Observation:
        return cls(d["trial_id"], list(d["values"]), d["objectives"], Outcome.parse(d.get("status", "ok")),
                   d.get("extra", {}))


class Controller(ABC):
    """Ask/tell over a search space's decisions, with limits enforced on every proposal."""

    name = "base"
    tabular = True  # False: needs trained weights, so a lookup-table benchmark cannot run it

    def __init__(self, space: SearchSpace, *, seed: int = 0, objectives: tuple[str, ...] = ("accuracy",),
                 max_macs: float | None = None, max_params: float | None = None):
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown or not objectives:
            raise ValueError(f"unknown objective {unknown[0] if unknown else '(none)'!r} (known: {', '.join(OBJECTIVES)})")
        if "accuracy" not in objectives:
            raise ValueError("objectives must include accuracy (e.g. accuracy,macs)")
        self.space, self.seed, self.objectives = space, seed, tuple(objectives)
        self.max_macs, self.max_params = max_macs, max_params
        self.rng = np.random.default_rng(seed)
        self.next_id = 0
        self.pending: dict[int, list[int]] = {}
        self.history: list[Observation] = []

    def ask(self) -> Proposal:
        """The next child to train (within the cost limits)."""
        values = self.propose()
        proposal = Proposal(self.next_id, values, self.space.decode(values))
        self.pending[self.next_id] = values
        self.next_id += 1
        return proposal

    def tell(self, trial_id: int, metrics: dict | None, outcome: Outcome | str = OK) -> None:
        """Record a finished child; metrics None (or an outcome without usable metrics) marks it failed."""
        values = self.pending.pop(trial_id, None)
        if values is None:
            raise KeyError(f"trial {trial_id} was not asked for, or was already told")
        outcome = Outcome.parse(outcome) if isinstance(outcome, str) else outcome
        objectives = objective_vector(metrics, self.objectives) if metrics and outcome.usable else None
        if objectives is None and outcome.usable:  # usable by its status, yet without the objectives' metrics
            outcome = Outcome.failed("")
        obs = Observation(trial_id, values, objectives, outcome)
        self.history.append(obs)
        self.observe(obs)

    def sample_within_limits(self) -> list[int]:
        """Uniform random decisions meeting the limits."""
        return self.space.sample_encoded(self.rng, self.max_macs, self.max_params)

    def within_limits(self, values: list[int]) -> bool:
        return self.space.within_limits(self.space.decode(values), self.max_macs, self.max_params)

    @abstractmethod
    def propose(self) -> list[int]:
        """Decision indices for the next child."""

    def observe(self, obs: Observation) -> None:
        """Learn from a finished child (history is already updated)."""

    def phases(self) -> list[Phase]:
        """Work to run before the first child (nas.phase), in order; none by default."""
        return []

    def annotations(self, values: list[int]) -> dict:
        """Metrics the controller knows of a child before it trains, recorded beside its results."""
        return {}

    def state_dict(self) -> dict:
        """Everything needed to continue: RNG, ids, pending and finished children (JSON-able)."""
        return {"name": self.name, "seed": self.seed, "objectives": list(self.objectives),
                "rng": self.rng.bit_generator.state, "next_id": self.next_id,
                "pending": {str(k): v for k, v in self.pending.items()},
                "history": [o.to_dict() for o in self.history], "extra": self.extra_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict() returned."""
        if state.get("name") != self.name:
            raise ValueError(f"state is for controller {state.get('name')!r}, not {self.name!r}")
        if tuple(state.get("objectives", self.objectives)) != self.objectives:
            raise ValueError(f"state is for objectives {state['objectives']}, not {list(self.objectives)}")
        self.rng.bit_generator.state = state["rng"]
        self.next_id = state["next_id"]
        self.pending = {int(k): list(v) for k, v in state["pending"].items()}
        self.history = [Observation.from_dict(o) for o in state["history"]]
        self.load_extra_state(state.get("extra", {}))

    def extra_state(self) -> dict:
        """Controller-specific state beyond the history (JSON-able)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore extra_state()."""

    def finished(self) -> list[Observation]:
        """Children that finished with objective values."""
        return [o for o in self.history if o.objectives is not None]
