"""The controller contract, one test over every registered controller, plus that evolution optimises.

The driver below is a fixed schedule of asks and tells (two children always in flight, every
seventh child fails) with a deterministic synthetic reward, so a run is a pure function of the
controller's seed: it can be repeated, and interrupted (state_dict -> JSON -> load_state_dict on a
fresh controller) with two children pending, and must continue with exactly the same proposals.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from nas.controllers import CONTROLLERS
from nas.controllers.base import make_controller
from nas.model.cost import arch_cost
from nas.outcome import Outcome
from nas.space import load_space

SPACES = ("nasbench_macro", "nasbench201")
STEPS = 48          # asks per run
INTERRUPT_AT = 32   # events before the snapshot (it falls right after a tell: two children pending)


@cache
def space_and_limit(name: str):
    """The space and a MACs limit that excludes a good part of it (the median of a sample)."""
    space = load_space(name)
    rng = np.random.default_rng(123)
    macs = [arch_cost(space.decode(space.sample_values(rng))).macs for _ in range(200)]
    return space, float(np.median(macs))


def reward(values: list[int]) -> float:
    """A deterministic synthetic accuracy: smooth in the indices, best at a fixed target."""
    target = [(3 * k + 1) % 3 for k in range(len(values))]
    return 90.0 - sum((v - t) ** 2 + 0.1 * k * v for k, (v, t) in enumerate(zip(values, target)))


def schedule(steps: int) -> list[str]:
    """ask, ask, then (ask, tell) pairs, then drain: after every tell two children are pending."""
    return ["ask", "ask"] + ["ask", "tell"] * (steps - 2) + ["tell", "tell"]


def run_events(ctrl, events, outstanding, log, limit):
    """Play events on ctrl; outstanding is the FIFO of (trial_id, values) asked and not told."""
    for event in events:
        if event == "ask":
            p = ctrl.ask()
            assert p.arch == ctrl.space.decode(p.values)
            assert p.values == ctrl.space.canonical(p.values)
            cost = arch_cost(p.arch)
            assert cost.macs <= limit, f"{ctrl.name} proposed {cost.macs} MACs over the limit {limit}"
            outstanding.append((p.trial_id, list(p.values), cost.macs))
            log.append(("ask", p.trial_id, tuple(p.values)))
        else:
            trial_id, values, macs = outstanding.pop(0)
            if trial_id % 7 == 3:
                ctrl.tell(trial_id, None)  # a failed child
            else:
                ctrl.tell(trial_id, {"val_acc": reward(values), "macs": macs, "train_s": 1.0})
            log.append(("tell", trial_id))


def make(name, space, **options):
    """make_controller; a weight-sharing controller first scores children (synthetic inherited accuracy)."""
    if name != "weight-sharing":
        return make_controller(name, space, **options)
    ctrl = make_controller(name, space, children=200, retrain=60, **options)
    ctrl.score_children(lambda v: {"val_acc": reward(v) - 0.5 * v[0], "macs": arch_cost(space.decode(v)).macs})
    return ctrl


def full_run(name, space, limit, seed, objectives, **options):
    ctrl = make(name, space, seed=seed, objectives=objectives, max_macs=limit, **options)
    log: list = []
    run_events(ctrl, schedule(STEPS), [], log, limit)
    return ctrl, log


def interrupted_run(name, space, limit, seed, objectives, **options):
    """The same run, snapshotted to JSON with two children pending and finished by a fresh controller."""
    events = schedule(STEPS)
    first = make(name, space, seed=seed, objectives=objectives, max_macs=limit, **options)
    outstanding: list = []
    log: list = []
    run_events(first, events[:INTERRUPT_AT], outstanding, log, limit)
    assert len(first.pending) == 2 and len(outstanding) == 2
    state = json.loads(json.dumps(first.state_dict()))  # JSON-serialisable, and survives a round trip
    del first
    resumed = make(name, space, seed=seed + 999, objectives=objectives, max_macs=limit, **options)
    resumed.load_state_dict(state)  # the seed (RNG state) comes from the state
    assert sorted(resumed.pending) == sorted(t for t, _, _ in outstanding)
    run_events(resumed, events[INTERRUPT_AT:], outstanding, log, limit)
    return resumed, log


@pytest.mark.parametrize("objectives", [("accuracy",), ("accuracy", "macs")], ids=["acc", "acc+macs"])
@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_controller_contract(name, space_name, objectives):
    space, limit = space_and_limit(space_name)

    # asks decode, honour the limit, tells take metrics and failures; same seed, same run
    ctrl, log = full_run(name, space, limit, 7, objectives)
    assert not ctrl.pending and len(ctrl.history) == STEPS
    failed = [o for o in ctrl.history if o.objectives is None]
    assert failed and all(o.trial_id % 7 == 3 and o.outcome == Outcome.failed("") for o in failed)
    assert all(len(o.objectives) == len(objectives) for o in ctrl.finished())
    assert all(o.objectives[0] == -reward(o.values) for o in ctrl.finished())  # accuracy is negated
    if len(objectives) > 1:
        assert all(o.objectives[1] == arch_cost(space.decode(o.values)).macs for o in ctrl.finished())
    again, log_again = full_run(name, space, limit, 7, objectives)
    assert log_again == log
    _, other = full_run(name, space, limit, 8, objectives)
    assert other != log  # the seed matters

    # interrupted with two children pending, restored from JSON: exactly the same continuation
    resumed, log_resumed = interrupted_run(name, space, limit, 7, objectives)
    assert log_resumed == log
    assert json.dumps(resumed.state_dict()["history"]) == json.dumps(ctrl.state_dict()["history"])

    # a state saved right after loading is loadable again and continues identically too
    twice = make(name, space, seed=0, objectives=objectives, max_macs=limit)
    twice.load_state_dict(json.loads(json.dumps(resumed.state_dict())))
    a, b = resumed.ask(), twice.ask()
    assert a.values == b.values and a.trial_id == b.trial_id == STEPS


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
def test_optuna_controllers_fall_back_to_random_children_within_the_limit(name):
    """With one try per proposal and a tight limit, many children are the enqueued random fallback."""
    space, _ = space_and_limit("nasbench_macro")
    rng = np.random.default_rng(5)
    limit = float(np.quantile([arch_cost(space.decode(space.sample_values(rng))).macs for _ in range(200)], 0.2))
    ctrl, log = full_run(name, space, limit, 3, ("accuracy", "macs"), max_tries=1)
    fixed = [t for t in ctrl.study.trials if "fixed_params" in t.system_attrs]
    pruned = [t for t in ctrl.study.trials if t.state.name == "PRUNED"]
    assert fixed and pruned and len(fixed) == len(pruned)  # every rejection was followed by a fallback
    _, log_resumed = interrupted_run(name, space, limit, 3, ("accuracy", "macs"), max_tries=1)
    assert log_resumed == log


def test_unknown_controller_lists_known_names():
    space, _ = space_and_limit("nasbench_macro")
    with pytest.raises(ValueError) as err:
        make_controller("simulated_annealing", space)
    for name in CONTROLLERS:
        assert name in str(err.value)
    assert {"random", "evolution", "tpe", "nsga2"} <= set(CONTROLLERS)


def test_state_of_another_controller_is_refused():
    space, _ = space_and_limit("nasbench_macro")
    state = make_controller("random", space, seed=0).state_dict()
    with pytest.raises(ValueError, match="random"):
        make_controller("tpe", space, seed=0).load_state_dict(state)


def test_evolution_beats_random_on_a_smooth_reward():
    space, _ = space_and_limit("nasbench_macro")
    best = {}
    for name in ("random", "evolution"):
        found = []
        for seed in range(5):
            ctrl = make_controller(name, space, seed=seed, population=10, tournament=3) if name == "evolution" \
                else make_controller(name, space, seed=seed)
            for _ in range(60):
                p = ctrl.ask()
                ctrl.tell(p.trial_id, {"val_acc": reward(p.values)})
            found.append(max(-o.objectives[0] for o in ctrl.finished()))
        best[name] = float(np.mean(found))
    assert best["evolution"] > best["random"] + 1.0, best


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "ERROR"])
def test_optuna_log_level_is_left_as_the_caller_set_it(level):
    import optuna

    saved = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(getattr(optuna.logging, level))
    try:
        controller = make_controller("tpe", load_space("nasbench_macro"), seed=0, n_startup_trials=1)
        for _ in range(3):
            proposal = controller.ask()
            controller.tell(proposal.trial_id, {"val_acc": 0.5})
        controller.load_state_dict(controller.state_dict())
        assert optuna.logging.get_verbosity() == getattr(optuna.logging, level)
    finally:
        optuna.logging.set_verbosity(saved)


@pytest.mark.parametrize("name", ["random", "evolution", "tpe", "rl"])
def test_asks_at_a_small_input_are_buildable(name):
    """vgg_like at 1x8x8 holds architectures with more 2x2 pools than pixels: no controller proposes one."""
    space = load_space("vgg_like").with_io((1, 8, 8), 10)
    options = {"population": 4, "tournament": 2} if name == "evolution" else {}
    ctrl = make_controller(name, space, seed=0, **options)
    for _ in range(16):
        proposal = ctrl.ask()
        arch_cost(proposal.arch)  # raises for an architecture that cannot be built at this input
        ctrl.tell(proposal.trial_id, {"val_acc": float(proposal.trial_id % 5), "macs": 1.0})
    with pytest.raises(ValueError, match="vgg_like: no architecture fits a 1x2x2 input"):
        make_controller(name, load_space("vgg_like").with_io((1, 2, 2), 10), seed=0, **options).ask()
