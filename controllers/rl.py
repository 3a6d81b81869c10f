"""Recurrent policy-gradient controller (Zoph & Le 2017, with ENAS's sampling tricks) as ``rl``.

The policy. An LSTM cell walks the space's decisions in order. Its first input is a learned
start vector; at each *active* decision it steps once, the decision's own output head (a linear
layer sized to the decision's option count) turns the hidden state into logits, and the chosen
option's embedding (a table per decision) is the next input. Logits are shaped as in ENAS:
``logits / temperature``, then ``tanh_constant * tanh(.)`` (either can be switched off with None).
A decision that a condition makes inactive (given the options chosen before it) is skipped: the
LSTM does not step, nothing is sampled, it contributes no log-probability and no entropy, and
index 0 is recorded (the space's canonical form). No per-space code: macro and cell spaces alike.

Learning: REINFORCE with an exponential-moving-average baseline, an entropy bonus, gradient-norm
clipping and Adam. Children are buffered in the order they are *told* (concurrent trials may
finish in any order); every ``batch`` finished children one update is made. Log-probabilities are
recomputed at update time from the stored decision indices (a batched, masked replay of the
LSTM), so nothing but indices is kept between ask and tell. Failed children (objectives None) are
**skipped**: they neither enter the batch nor move the baseline (a failure says nothing about
accuracy, and a made-up low reward would teach the policy to avoid what merely crashed).
Loss per batch: ``-mean((r_i - b) * log p_i) - entropy_weight * mean(H_i)`` where ``b`` is the
baseline before the batch (the first batch uses its own mean reward) and ``H_i`` is the summed
entropy of the active decisions along child i's sequence; afterwards ``b`` is moved towards each
reward in turn, ``b <- decay * b + (1 - decay) * r``.

Rewards. Accuracy comes from the objectives (``val_acc``), in [0, 1] or in percent (a value above
1 in magnitude is divided by 100). With ``target_macs`` the reward is MnasNet's
``acc * (macs / target_macs) ** w``: soft mode (default) ``w = macs_weight`` on both sides
(default -0.07); ``hard_target=True`` uses ``w = 0`` at or below the target and ``w = macs_weight``
above it (default -1, MnasNet's hard constraint). The MACs come from the ``macs`` objective when
the objectives include it, else from the analytic cost of the decoded architecture. Without a
target the reward is the accuracy alone, also with objectives ``accuracy,macs`` (a cost
objective then only appears in the search's records and Pareto front, it does not shape the
policy); ``params`` never enters the reward. Finally the reward is raised to ``reward_power``
(default 1; sign kept). Zoph & Le cube the accuracy; a power is a monotone transform, so the
ranking of children (and MnasNet's trade-off between them) is unchanged, but the gradient then
concentrates on the best children instead of on avoiding the worst: on NAS-Bench-201, whose
12-epoch rewards spread from ~10% to ~85%, ``reward_power=20`` is the tabular default.

Defaults: hidden 64, Adam lr 0.01, batch 5, baseline decay 0.95, entropy weight 1e-4,
temperature 5, tanh constant 2.5 (ENAS), gradient-norm clip 5, 20 policy tries per proposal.
Tabular runs (``nas bench``) use ``nas.bench.TABULAR_DEFAULTS["rl"]``: batch 3, lr 0.01,
reward_power 20, chosen on the search reward (see docs/benchmarks.md).

Limits: a sample over ``max_macs``/``max_params`` is drawn again from the policy, up to
``max_tries`` times, then a uniformly random child within the limits is proposed
(``sample_within_limits``); either way it is learned from like any other child.

Determinism and resume: all torch randomness (weight initialisation and sampling) goes through a
private ``torch.Generator`` seeded from the controller's numpy Generator; the global torch RNG is
never used and ``torch.set_num_threads`` is never called. ``extra_state`` holds the weights, Adam's
state and the generator's state (``torch.save`` bytes, base64; loaded with ``weights_only=True``),
the baseline and the trial ids waiting in the current batch, so a restored controller proposes
exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nas.controllers.base import Controller, Observation, register_controller


class _Policy(nn.Module):
    """LSTM cell + per-decision output heads and option embeddings."""

    def __init__(self, sizes: Sequence[int], hidden: int, generator: torch.Generator):
        super().__init__()
        self.hidden = hidden
        with torch.device("meta"):  # no storage and no default initialisation (which reads the global RNG)
            self.start = nn.Parameter(torch.zeros(1, hidden))
            self.lstm = nn.LSTMCell(hidden, hidden)
            self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
            self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in sizes)
        self.to_empty(device="cpu")
        self.init_weights(generator)

    def init_weights(self, generator: torch.Generator, scale: float = 0.1) -> None:
        """Uniform(-scale, scale) for every parameter, as in ENAS, drawn from generator."""
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-scale, scale, generator=generator)


@register_controller("rl")
class ReinforceController(Controller):
    """REINFORCE on an autoregressive LSTM policy over the space's decisions."""

    def __init__(self, space, *, hidden: int = 64, lr: float = 0.01, batch: int = 5,
                 baseline_decay: float = 0.95, entropy_weight: float = 1e-4,
                 temperature: float | None = 5.0, tanh_constant: float | None = 2.5,
                 grad_clip: float | None = 5.0, max_tries: int = 20,
                 target_macs: float | None = None, macs_weight: float | None = None,
                 hard_target: bool = False, reward_power: float = 1.0, **kwargs):
        super().__init__(space, **kwargs)
        if temperature is not None and not (_number(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive number (logits are divided by it) or None for "
                             f"none, got {temperature!r}")
        if tanh_constant is not None and not (_number(tanh_constant) and tanh_constant > 0):
            raise ValueError(f"tanh_constant must be a positive number (logits become tanh_constant * "
                             f"tanh(logits)) or None for no clipping, got {tanh_constant!r}")
        for key, value in (("hidden", hidden), ("batch", batch), ("max_tries", max_tries)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        checks = (("lr", lr, lr is not None and _number(lr) and lr > 0, "> 0"),
                  ("baseline_decay", baseline_decay, _number(baseline_decay) and 0 <= baseline_decay < 1, "in [0, 1)"),
                  ("entropy_weight", entropy_weight, _number(entropy_weight) and entropy_weight >= 0, ">= 0"),
                  ("grad_clip", grad_clip, grad_clip is None or (_number(grad_clip) and grad_clip > 0), "> 0 or None"),
                  ("target_macs", target_macs, target_macs is None or (_number(target_macs) and target_macs > 0),
                   "> 0 (multiply-adds) or None"),
                  ("macs_weight", macs_weight, macs_weight is None or _number(macs_weight), "a finite number"),
                  ("reward_power", reward_power, _number(reward_power) and reward_power > 0, "> 0"),
                  ("hard_target", hard_target, isinstance(hard_target, bool), "true or false"))
        for key, value, ok, what in checks:
            if not ok:
                raise ValueError(f"{key} must be {what}, got {value!r}")
        self.hidden, self.lr, self.batch = int(hidden), float(lr), int(batch)
        self.baseline_decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        self.temperature = None if temperature is None else float(temperature)
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.max_tries = int(max_tries)
        self.target_macs = None if target_macs is None else float(target_macs)
        self.hard_target = bool(hard_target)
        self.reward_power = float(reward_power)
        self.macs_weight = float(macs_weight) if macs_weight is not None else (-1.0 if self.hard_target else -0.07)

        self._index = {d.name: k for k, d in enumerate(space.decisions)}
        self._sizes = [len(d.options) for d in space.decisions]
        self._limited = bool(self.max_macs or self.max_params or space.spec.constraints)
        self._generator = torch.Generator()
        self._generator.manual_seed(int(self.rng.integers(2**63 - 1)))
        self.policy = _Policy(self._sizes, self.hidden, self._generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        self.baseline: float | None = None
        self.waiting: list[int] = []  # trial ids of finished children in the current batch, in tell order
        self.updates = 0

    # -- the policy -------------------------------------------------------------------------
    def _logits(self, k: int, h: torch.Tensor) -> torch.Tensor:
        logits = self.policy.heads[k](h)
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def _active(self, k: int, values: Sequence[int]) -> bool:
        """Whether decision k is active given the options chosen so far (conditions read earlier ones)."""
        return all(values[self._index[name]] in allowed for name, allowed in self.space.decisions[k].condition)

    def sample(self) -> list[int]:
        """One sequence of decision indices drawn from the policy (no gradient)."""
        values = [0] * len(self._sizes)
        with torch.no_grad():
            x = self.policy.start
            state = None
            for k in range(len(self._sizes)):
                if not self._active(k, values):
                    continue
                state = self.policy.lstm(x, state)
                probs = torch.softmax(self._logits(k, state[0]), dim=-1)
                choice = int(torch.multinomial(probs, 1, generator=self._generator))
                values[k] = choice
                x = self.policy.embeddings[k].weight[choice:choice + 1]
        return values

    def evaluate(self, batch_values: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy (summed over active decisions) of each sequence, with gradient.

        A batched replay of ``sample``: rows whose decision k is inactive keep their LSTM state and
        input unchanged at step k and get no log-probability or entropy from it.
        """
        n = len(batch_values)
        values = torch.tensor([list(v) for v in batch_values], dtype=torch.long)
        active = torch.tensor([self.space.active(v) for v in batch_values], dtype=torch.bool)
        x = self.policy.start.expand(n, -1)
        h = c = torch.zeros(n, self.hidden)
        log_prob, entropy = torch.zeros(n), torch.zeros(n)
        for k in range(len(self._sizes)):
            mask = active[:, k]
            if not bool(mask.any()):
                continue
            h_new, c_new = self.policy.lstm(x, (h, c))
            logp = torch.log_softmax(self._logits(k, h_new), dim=-1)
            chosen = logp.gather(1, values[:, k:k + 1]).squeeze(1)
            ent = -(logp.exp() * logp).sum(dim=1)
            log_prob = log_prob + torch.where(mask, chosen, torch.zeros_like(chosen))
            entropy = entropy + torch.where(mask, ent, torch.zeros_like(ent))
            m = mask.unsqueeze(1)
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            x = torch.where(m, self.policy.embeddings[k](values[:, k]), x)
        return log_prob, entropy

    def probabilities(self, k: int, prefix: Sequence[int] | None = None) -> np.ndarray:
        """The policy's option probabilities at decision k after the given earlier choices (for inspection)."""
        values = list(prefix or []) + [0] * (len(self._sizes) - len(prefix or []))
        with torch.no_grad():
            x, state = self.policy.start, None
            for j in range(k + 1):
                if not self._active(j, values):
                    if j == k:
                        raise ValueError(f"decision {self.space.decisions[k].name} is inactive after {prefix}")
                    continue
                state = self.policy.lstm(x, state)
                if j == k:
                    return torch.softmax(self._logits(k, state[0]), dim=-1)[0].numpy()
                x = self.policy.embeddings[j].weight[values[j]:values[j] + 1]
        raise AssertionError("unreachable")

    # -- ask / tell -------------------------------------------------------------------------
    def propose(self) -> list[int]:
        for _ in range(self.max_tries):
            values = self.sample()
            if not self.space.unfit(values) and (not self._limited or self.within_limits(values)):
                return values
        return self.sample_within_limits()

    def reward(self, obs: Observation) -> float:
        """The scalar reward of a finished child (see the module docstring)."""
        acc = -float(obs.objectives[0])
        if abs(acc) > 1.0:
            acc /= 100.0
        if self.target_macs is None:
            reward = acc
        else:
            if "macs" in self.objectives:
                macs = float(obs.objectives[self.objectives.index("macs")])
            else:
                from nas.model.cost import arch_cost

                macs = float(arch_cost(self.space.decode(obs.values)).macs)
            reward = mnasnet_reward(acc, macs, self.target_macs, self.macs_weight, self.hard_target)
        if self.reward_power != 1.0:  # monotone: the ranking of children is unchanged
            reward = math.copysign(abs(reward) ** self.reward_power, reward)
        return reward

    def observe(self, obs: Observation) -> None:
        if obs.objectives is None:
            return  # failed children are skipped (see the module docstring)
        self.waiting.append(obs.trial_id)
        if len(self.waiting) >= self.batch:
            self._update()

    def _update(self) -> None:
        by_id = {o.trial_id: o for o in self.history}
        chosen = [by_id[t] for t in self.waiting]
        rewards = [self.reward(o) for o in chosen]
        baseline = self.baseline if self.baseline is not None else float(np.mean(rewards))
        advantage = torch.tensor([r - baseline for r in rewards], dtype=torch.float32)
        log_prob, entropy = self.evaluate([o.values for o in chosen])
        loss = -(advantage * log_prob).mean() - self.entropy_weight * entropy.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        for r in rewards:
            baseline = self.baseline_decay * baseline + (1.0 - self.baseline_decay) * r
        self.baseline = float(baseline)
        self.waiting = []
        self.updates += 1

    # -- state ------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        buffer = io.BytesIO()
        torch.save({"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "generator": self._generator.get_state()}, buffer)
        return {"torch": base64.b64encode(buffer.getvalue()).decode("ascii"), "baseline": self.baseline,
                "waiting": list(self.waiting), "updates": self.updates}

    def load_extra_state(self, state: dict) -> None:
        if "torch" in state:
            data = torch.load(io.BytesIO(base64.b64decode(state["torch"])), weights_only=True)
            self.policy.load_state_dict(data["policy"])
            self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
            self.optimizer.load_state_dict(data["optimizer"])
            self._generator.set_state(data["generator"])
        self.baseline = state.get("baseline")
        self.waiting = [int(t) for t in state.get("waiting", [])]
        self.updates = int(state.get("updates", 0))


def mnasnet_reward(acc: float, macs: float, target: float, weight: float = -0.07, hard: bool = False) -> float:
    """MnasNet's ``acc * (macs / target) ** w``; hard: ``w = 0`` at or below the target, ``weight`` above."""
    w = 0.0 if hard and macs <= target else weight
    return float(acc * max(macs / target, 1e-12) ** w)  # (a zero-MACs child would divide by zero)


def _number(x) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
