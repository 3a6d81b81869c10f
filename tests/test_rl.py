"""The REINFORCE controller (`rl`): masking of inactive decisions, learning, rewards, state, settings.

The ask/tell/resume contract itself is checked for every controller in tests/test_controllers.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nas.controllers.base import Observation, make_controller
from nas.controllers.rl import ReinforceController, mnasnet_reward
from nas.model.cost import arch_cost
from nas.space import load_space


@pytest.fixture(scope="module")
def resnet_like():
    return load_space("resnet_like")


@pytest.fixture(scope="module")
def nb201():
    return load_space("nasbench201")


def _prefer(ctrl: ReinforceController, k: int, option: int, strength: float = 30.0) -> None:
    """Make decision k's head pick `option` almost surely (logits are unshaped in these tests)."""
    with torch.no_grad():
        head = ctrl.policy.heads[k]
        head.weight.zero_()
        head.bias.zero_()
        head.bias[option] = strength


def _index(space, name: str) -> int:
    return [d.name for d in space.decisions].index(name)


def test_inactive_decisions_are_never_sampled(resnet_like):
    """Whatever the policy prefers for a decision, it is recorded 0 whenever its condition fails."""
    space = resnet_like
    ctrl = make_controller("rl", space, seed=0, temperature=None, tanh_constant=None)
    # 3 stages and basic blocks everywhere: stages[3].* and every mid_ratio/groups are inactive...
    _prefer(ctrl, _index(space, "num_stages"), 0)
    for i in range(4):
        _prefer(ctrl, _index(space, f"stages[{i}].block.type"), 0)
    # ...although their heads insist on a non-zero option
    conditional = [k for k, d in enumerate(space.decisions) if d.condition]
    assert {space.decisions[k].name for k in conditional} >= {"stages[3].depth", "stages[0].block.groups"}
    for k in conditional:
        _prefer(ctrl, k, len(space.decisions[k].options) - 1)
    for _ in range(20):
        values = ctrl.propose()
        active = space.active(values)
        assert values == space.canonical(values)
        assert not any(active[k] for k in conditional)
        assert all(values[k] == 0 for k in conditional)
    # with resnext blocks and 4 stages the same decisions are active and follow their heads
    _prefer(ctrl, _index(space, "num_stages"), 1)
    for i in range(4):
        _prefer(ctrl, _index(space, f"stages[{i}].block.type"), 2)
    values = ctrl.propose()
    assert all(space.active(values)[k] and values[k] == len(space.decisions[k].options) - 1 for k in conditional)


def test_inactive_decisions_contribute_no_log_prob_or_gradient(resnet_like):
    space = resnet_like
    ctrl = make_controller("rl", space, seed=1)
    rng = np.random.default_rng(0)
    samples = [space.sample_values(rng) for _ in range(40)]
    three = next(v for v in samples if not space.active(v)[_index(space, "stages[3].depth")])
    four = next(v for v in samples if space.active(v)[_index(space, "stages[3].depth")])

    # the batched, masked replay equals a step-by-step sum over the active decisions only
    log_prob, entropy = ctrl.evaluate([three, four])
    for row, values in enumerate([three, four]):
        active = space.active(values)
        expect_lp = expect_ent = 0.0
        for k, _d in enumerate(space.decisions):
            if active[k]:
                p = ctrl.probabilities(k, values[:k])
                expect_lp += math.log(p[values[k]])
                expect_ent -= float(np.sum(p * np.log(p)))
        assert log_prob[row].item() == pytest.approx(expect_lp, abs=1e-4)
        assert entropy[row].item() == pytest.approx(expect_ent, abs=1e-4)

    # no log-prob and no gradient reach the head and embedding of an inactive decision
    k = _index(space, "stages[3].depth")
    ctrl.policy.zero_grad(set_to_none=True)
    lp, ent = ctrl.evaluate([three])
    (lp.sum() + ent.sum()).backward()
    assert ctrl.policy.heads[k].weight.grad is None or not ctrl.policy.heads[k].weight.grad.any()
    assert ctrl.policy.embeddings[k].weight.grad is None or not ctrl.policy.embeddings[k].weight.grad.any()
    with torch.no_grad():
        ctrl.policy.heads[k].bias[2] += 50.0
    assert ctrl.evaluate([three])[0].item() == pytest.approx(lp.item(), abs=1e-6)
    assert ctrl.evaluate([four])[0].item() != pytest.approx(log_prob[1].item(), abs=1e-3)


def test_policy_learns_a_preferred_option(nb201):
    """Reward = share of edges with option 3: its probability and the proposals' reward both rise."""
    ctrl = make_controller("rl", nb201, seed=0)
    before = [ctrl.probabilities(k, [3] * k)[3] for k in range(len(nb201.decisions))]
    rewards = []
    for _ in range(200):
        p = ctrl.ask()
        r = float(np.mean([v == 3 for v in p.values]))
        rewards.append(r)
        ctrl.tell(p.trial_id, {"val_acc": r})
    after = [ctrl.probabilities(k, [3] * k)[3] for k in range(len(nb201.decisions))]
    assert ctrl.updates == 200 // ctrl.batch
    assert np.mean(rewards[-40:]) > np.mean(rewards[:40]) + 0.4, (np.mean(rewards[:40]), np.mean(rewards[-40:]))
    assert all(b < 0.3 and a > 0.6 for a, b in zip(after, before)), (before, after)


def test_mnasnet_reward_formula(nb201):
    assert mnasnet_reward(0.9, 1e8, 1e8) == pytest.approx(0.9)
    assert mnasnet_reward(0.9, 2e8, 1e8) == pytest.approx(0.9 * 2 ** -0.07)
    assert mnasnet_reward(0.9, 5e7, 1e8) == pytest.approx(0.9 * 0.5 ** -0.07)  # soft: a bonus below the target
    assert mnasnet_reward(0.9, 5e7, 1e8, -1.0, hard=True) == pytest.approx(0.9)  # hard: w = 0 at or below
    assert mnasnet_reward(0.9, 1e8, 1e8, -1.0, hard=True) == pytest.approx(0.9)
    assert mnasnet_reward(0.9, 1.5e8, 1e8, -1.0, hard=True) == pytest.approx(0.9 / 1.5)

    obs = Observation(0, [3] * 6, [-90.0, 2e8])  # accuracy in percent, negated; macs as the second objective
    def reward(**options):
        objectives = options.pop("objectives", ("accuracy", "macs"))
        return make_controller("rl", nb201, objectives=objectives, **options).reward(obs)
    assert reward() == pytest.approx(0.9)  # accuracy,macs without a target: accuracy alone
    assert reward(target_macs=1e8) == pytest.approx(0.9 * 2 ** -0.07)
    assert reward(target_macs=1e8, macs_weight=-0.15) == pytest.approx(0.9 * 2 ** -0.15)
    assert reward(target_macs=1e8, hard_target=True) == pytest.approx(0.9 / 2)  # default -1 above the target
    assert reward(target_macs=4e8, hard_target=True) == pytest.approx(0.9)
    assert reward(target_macs=1e8, reward_power=3) == pytest.approx((0.9 * 2 ** -0.07) ** 3)
    fraction = Observation(0, [3] * 6, [-0.9, 2e8])
    assert make_controller("rl", nb201, objectives=("accuracy", "macs")).reward(fraction) == pytest.approx(0.9)
    # accuracy alone as the objective: the MACs of the target reward come from the analytic cost
    macs = arch_cost(nb201.decode([3] * 6)).macs
    ctrl = make_controller("rl", nb201, target_macs=1e8)
    assert ctrl.reward(Observation(0, [3] * 6, [-90.0])) == pytest.approx(0.9 * (macs / 1e8) ** -0.07)


def test_state_round_trip_mid_batch(nb201):
    """Saved with a half-full batch and children pending (told out of order, one failed): same future."""
    def drive(ctrl, steps, outstanding):
        seen = []
        for step in range(steps):
            p = ctrl.ask()
            outstanding.append(p)
            seen.append(tuple(p.values))
            if step % 3 == 2:  # tell the second-oldest first, so tells arrive out of order
                q = outstanding.pop(1 if len(outstanding) > 1 else 0)
                ctrl.tell(q.trial_id, None if q.trial_id % 5 == 4 else {"val_acc": 60 + sum(q.values)})
        return seen

    first = make_controller("rl", nb201, seed=3, batch=4)
    outstanding: list = []
    drive(first, 26, outstanding)
    assert first.waiting and len(first.waiting) < first.batch and first.updates > 0 and first.pending
    assert all(t not in first.waiting for t in range(4, first.next_id, 5))  # failed children are skipped
    state = json.loads(json.dumps(first.state_dict()))
    second = make_controller("rl", nb201, seed=99, batch=4)
    second.load_state_dict(state)
    assert second.waiting == first.waiting and second.baseline == first.baseline
    assert second.updates == first.updates
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(first._generator.get_state(), second._generator.get_state())
    out_a, out_b = list(outstanding), list(outstanding)
    assert drive(first, 30, out_a) == drive(second, 30, out_b)
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)


def test_global_torch_rng_is_untouched_and_seed_decides(nb201):
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    runs = []
    for seed in (5, 5, 6):
        ctrl = make_controller("rl", nb201, seed=seed, batch=2)
        out = []
        for _ in range(12):
            p = ctrl.ask()
            out.append(tuple(p.values))
            ctrl.tell(p.trial_id, {"val_acc": 50.0 + p.values[0]})
        runs.append(out)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_limits_fall_back_to_random_children_within_them(nb201):
    rng = np.random.default_rng(0)
    macs = sorted(arch_cost(nb201.decode(nb201.sample_values(rng))).macs for _ in range(100))
    limit = macs[10]
    ctrl = make_controller("rl", nb201, seed=0, max_macs=limit, max_tries=1)
    with torch.no_grad():  # the policy wants the most expensive cell: every try is over the limit
        for k in range(len(nb201.decisions)):
            _prefer(ctrl, k, 3)
    for _ in range(10):
        p = ctrl.ask()
        assert arch_cost(p.arch).macs <= limit


@pytest.mark.parametrize("option, value, match", [
    ("temperature", 0, "temperature must be a positive number"),
    ("temperature", -5.0, "temperature must be a positive number"),
    ("temperature", "hot", "option temperature='hot': input should be a valid number"),
    ("temperature", float("nan"), "temperature must be a positive number"),
    ("tanh_constant", 0.0, "tanh_constant must be a positive number"),
    ("tanh_constant", -2.5, "tanh_constant must be a positive number"),
    ("tanh_constant", True, "option tanh_constant=True: input should be a valid number"),
    ("batch", 0, "batch must be a positive integer"),
    ("lr", 0.0, "lr must be > 0"),
    ("baseline_decay", 1.0, r"baseline_decay must be in \[0, 1\)"),
    ("target_macs", -1e8, "target_macs must be > 0"),
    ("reward_power", 0, "reward_power must be > 0"),
])
def test_settings_are_validated(nb201, option, value, match):
    with pytest.raises(ValueError, match=match):
        make_controller("rl", nb201, **{option: value})


def test_temperature_and_tanh_can_be_switched_off(nb201):
    ctrl = make_controller("rl", nb201, temperature=None, tanh_constant=None)
    assert ctrl.temperature is None and ctrl.tanh_constant is None
    shaped = make_controller("rl", nb201, temperature=5, tanh_constant=2.5)
    with torch.no_grad():  # logits +-1000: tanh clips them to +-2.5
        shaped.policy.heads[0].weight.zero_()
        shaped.policy.heads[0].bias.fill_(-1000.0)
        shaped.policy.heads[0].bias[1] = 1000.0
    assert shaped.probabilities(0).max() == pytest.approx(math.exp(2.5) / (math.exp(2.5) + 4 * math.exp(-2.5)), rel=0.02)
