"""--keep-checkpoints pareto: the kept set lives in memory; each finished child costs O(1) store reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.arch import Arch
from nas.search.checkpoints import CheckpointFront
from nas.space import load_space
from nas.store import RunStore


class CountingStore(RunStore):
    """A run store that counts how many trial rows were read."""

    rows_read = 0

    def trials(self, status=None):
        found = super().trials(status)
        self.rows_read += len(found)
        return found


def _finish(store: RunStore, run: Path, trial_id: int, arch: Arch, val_acc: float, macs: float) -> tuple[dict, str]:
    ckpt = run / "checkpoints" / f"trial_{trial_id}.pt"
    ckpt.write_bytes(b"weights")
    metrics = {"val_acc": val_acc, "macs": macs}
    store.start_trial(trial_id, arch.to_json(), arch.arch_id, [0])
    store.finish_trial(trial_id, "ok", metrics, 1.0, {}, str(ckpt))
    return metrics, str(ckpt)


def test_pruning_keeps_the_front_and_reads_no_trial_after_the_start(tmp_path):
    run = tmp_path / "run"
    store = CountingStore(run, create=True)
    arch = load_space("resnet_like").with_io((1, 8, 8), 10).sample(np.random.default_rng(0))
    _finish(store, run, 0, arch, 50.0, 100.0)  # seeded from the store: a resumed run's checkpoint
    front = CheckpointFront(store, ("accuracy", "macs"))
    seeded = store.rows_read
    assert seeded == 1 and set(front.kept) == {0}
    children = 200
    for i in range(1, children + 1):  # each child is more accurate and costlier: all stay on the front ...
        front.add(i, *_finish(store, run, i, arch, 50.0 + i / 10, 100.0 + i))
    assert len(front.kept) == children + 1
    front.add(999, *_finish(store, run, 999, arch, 10.0, 1e9))  # ... and a dominated one is dropped at once
    front.add(1000, *_finish(store, run, 1000, arch, 99.0, 50.0))  # dominates every other: they all go
    assert store.rows_read == seeded  # no re-read per child: pruning is linear in the run, not quadratic
    assert set(front.kept) == {1000}
    kept = {t.trial_id for t in store.trials() if t.checkpoint}
    assert kept == {1000} and sorted(p.name for p in (run / "checkpoints").iterdir()) == ["trial_1000.pt"]
    store.close()


def test_a_child_without_objectives_loses_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    store = RunStore(run, create=True)
    arch = load_space("resnet_like").with_io((1, 8, 8), 10).sample(np.random.default_rng(0))
    front = CheckpointFront(store, ("accuracy", "macs"))
    metrics, ckpt = _finish(store, run, 0, arch, 50.0, 100.0)
    front.add(0, {"val_acc": 50.0}, ckpt)
    assert not Path(ckpt).exists() and front.kept == {}
    store.close()
