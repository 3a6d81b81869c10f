"""Optuna's TPE and NSGA-II samplers as controllers, driven through Optuna's ask/tell interface.

Each proposal is one Optuna trial that suggests the space's decisions define-by-run: one
``suggest_categorical(decision.name, [0, 1, ..., n_options - 1])`` per *active* decision, in the
space's order, with conditions evaluated on the indices chosen so far. Inactive decisions are
never suggested and get index 0, so Optuna sees conditional parameters as absent, not as fixed.
The study minimises every objective (``objective_vector`` already negates accuracy): a
single-objective study for ``("accuracy",)``, a multi-objective one when macs/params are added.

Cost limits: a suggestion over the limits is told to Optuna as PRUNED (TPE then counts it among
the bad trials, NSGA-II ignores it) and Optuna is asked again, at most ``max_tries`` times; after
that a uniformly random child within the limits is enqueued (``study.enqueue_trial``) and asked,
so every proposal is an Optuna trial. A failed child (metrics None) is told as FAIL.

Determinism and resume. An Optuna study is not JSON, and its samplers keep their own RNG, so:
  * before every ``study.ask`` the study gets a fresh sampler seeded from the controller's own
    numpy Generator (saved by ``state_dict``); a sampler never carries state across asks;
  * ``extra_state`` records, per Optuna trial in trial-number order, the controller trial id
    (None for a proposal rejected by the limits, whose indices are stored instead) and the
    trial's Optuna system attributes, plus the study's system attributes. NSGA-II keeps its
    generation numbers and parent-population cache there; they depend on the order in which
    children finished, so they are recorded rather than recomputed;
  * ``load_extra_state`` rebuilds a fresh in-memory study with ``study.add_trial`` in the same
    order: finished children as COMPLETE (their objective values) or FAIL, rejected ones as
    PRUNED, pending ones as RUNNING (so they can still be told, and TPE's constant liar sees
    them exactly as before). The objective values and indices come from the base history and
    pending lists. A restored controller therefore proposes exactly what the uninterrupted one
    would have.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nas.controllers.base import Controller, Observation, register_controller


class OptunaController(Controller):
    """Shared ask/tell plumbing; subclasses say which sampler to build."""

    def __init__(self, space, *, max_tries: int = 20, **kwargs):
        super().__init__(space, **kwargs)
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1 (got {max_tries})")
        self.max_tries = max_tries
        self._choices = {d.name: list(range(len(d.options))) for d in space.decisions}
        self._distributions = {name: CategoricalDistribution(c) for name, c in self._choices.items()}
        self._new_study()

    # -- subclasses -------------------------------------------------------------------------
    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    # -- the study --------------------------------------------------------------------------
    def _new_study(self) -> None:
        with _quiet():
            self.study = optuna.create_study(directions=["minimize"] * len(self.objectives),
                                             sampler=self.make_sampler(0))
        self._trial_of: dict[int, int] = {}       # controller trial id -> Optuna trial number
        self._id_of: dict[int, int] = {}          # Optuna trial number -> controller trial id
        self._rejected: dict[int, list[int]] = {}  # Optuna trial number -> indices over the limits

    def _params(self, values: list[int]) -> dict[str, int]:
        active = self.space.active(values)
        return {d.name: int(v) for d, v, a in zip(self.space.decisions, values, active) if a}

    def _ask(self) -> optuna.trial.Trial:
        self.study.sampler = self.make_sampler(int(self.rng.integers(2**31 - 1)))
        return self.study.ask()

    def _suggest(self, trial) -> list[int]:
        """Define-by-run: suggest each decision that is active given the indices chosen so far."""
        values = [0] * len(self.space.decisions)
        for k, d in enumerate(self.space.decisions):
            if self.space.active(values)[k]:
                values[k] = int(trial.suggest_categorical(d.name, self._choices[d.name]))
        return values

    def propose(self) -> list[int]:
        with _quiet():
            for _ in range(self.max_tries):
                trial = self._ask()
                values = self._suggest(trial)
                if self.within_limits(values):
                    return self._bind(trial, values)
                self.study.tell(trial, state=TrialState.PRUNED)
                self._rejected[trial.number] = values
            values = self.sample_within_limits()
            self.study.enqueue_trial(self._params(values))
            trial = self._ask()
            got = self._suggest(trial)
            assert got == self.space.canonical(values), (got, values)
            return self._bind(trial, got)

    def _bind(self, trial, values: list[int]) -> list[int]:
        # Controller.ask gives this proposal the id self.next_id right after propose() returns.
        self._trial_of[self.next_id] = trial.number
        self._id_of[trial.number] = self.next_id
        return values

    def observe(self, obs: Observation) -> None:
        number = self._trial_of.pop(obs.trial_id)
        with _quiet():
            if obs.objectives is None:
                self.study.tell(number, state=TrialState.FAIL)
            else:
                self.study.tell(number, values=list(obs.objectives))

    # -- state ------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        trials = self.study.get_trials(deepcopy=False)
        return {"optuna_trials": [{"id": self._id_of.get(t.number), "values": self._rejected.get(t.number),
                                   "attrs": _jsonable(t.system_attrs)} for t in trials],
                "optuna_study_attrs": _jsonable(self.study._storage.get_study_system_attrs(self.study._study_id))}

    def load_extra_state(self, state: dict) -> None:
        self._new_study()
        records = state.get("optuna_trials")
        if records is None:  # no Optuna record: replay the history, then the pending children, by id
            records = [{"id": i, "values": None, "attrs": {}}
                       for i in sorted([o.trial_id for o in self.history] + list(self.pending))]
        finished = {o.trial_id: o for o in self.history}
        for number, rec in enumerate(records):
            tid, values, objectives = rec["id"], rec.get("values"), None
            if tid is None:
                trial_state = TrialState.PRUNED
            elif tid in self.pending:
                values, trial_state = self.pending[tid], TrialState.RUNNING
                self._trial_of[tid] = number
            else:
                obs = finished[tid]
                values, objectives = obs.values, obs.objectives
                trial_state = TrialState.FAIL if objectives is None else TrialState.COMPLETE
            params = self._params(values)
            self.study.add_trial(create_trial(
                state=trial_state, params=params, distributions={n: self._distributions[n] for n in params},
                values=objectives, system_attrs=rec.get("attrs", {})))
            if tid is None:
                self._rejected[number] = list(values)
            else:
                self._id_of[number] = tid
        for key, value in state.get("optuna_study_attrs", {}).items():
            self.study._storage.set_study_system_attr(self.study._study_id, key, value)


@register_controller("tpe")
class TPEController(OptunaController):
    """Optuna's Tree-structured Parzen Estimator: multivariate, with group decomposition.

    ``group=True`` makes the multivariate TPE model each set of decisions that are active together
    jointly, which is what conditional spaces need (e.g. per-stage choices that exist only when the
    stage does). ``n_startup_trials`` children are random before the model is used.
    """

    def __init__(self, space, *, n_startup_trials: int = 10, n_ei_candidates: int = 24, **kwargs):
        if n_startup_trials < 0 or n_ei_candidates < 1:
            raise ValueError(f"need n_startup_trials >= 0 and n_ei_candidates >= 1 "
                             f"(got {n_startup_trials}, {n_ei_candidates})")
        self.n_startup_trials, self.n_ei_candidates = n_startup_trials, n_ei_candidates
        super().__init__(space, **kwargs)

    def make_sampler(self, seed: int):
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                          n_ei_candidates=self.n_ei_candidates, multivariate=True,
                                          group=True, constant_liar=True)


@register_controller("nsga2")
class NSGA2Controller(OptunaController):
    """Optuna's NSGA-II: generations of ``population`` children, uniform crossover, random mutation."""

    def __init__(self, space, *, population: int = 20, **kwargs):
        if population < 2:
            raise ValueError(f"population must be >= 2 (got {population})")
        self.population_size = population
        super().__init__(space, **kwargs)

    def make_sampler(self, seed: int):
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size)


class _quiet(warnings.catch_warnings):
    """Silence Optuna's per-trial INFO logs and experimental-feature warnings (``group``) for a block.

    Optuna's log level is process-wide: it is restored on exit so the caller's own Optuna use keeps its setting.
    """

    def __enter__(self):
        out = super().__enter__()
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        self._verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(max(self._verbosity, optuna.logging.WARNING))
        return out

    def __exit__(self, *exc_info):
        optuna.logging.set_verbosity(self._verbosity)
        return super().__exit__(*exc_info)


def _jsonable(value: Any) -> Any:
    """Optuna attributes as plain JSON types (tuples to lists, numpy scalars to numbers)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value
