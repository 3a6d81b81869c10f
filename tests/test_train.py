"""The child trainer: learns, reports, survives NaN and out-of-memory, checkpoints safely."""

from __future__ import annotations

import pytest
import torch

from nas.arch import Arch, Block, Head
from nas.data import load_splits
from nas.model.build import build_model
from nas.train import Recipe, load_checkpoint, lr_at, random_crop_flip, save_checkpoint, train_child


def tiny_arch(classes: int = 10) -> Arch:
    stem = (Block.make("conv", 16, 1, kernel=3),)
    stages = ((Block.make("basic", 16, 1),), (Block.make("basic", 32, 2),))
    return Arch((1, 8, 8), classes, stem, stages, Head())


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits", seed=0)


def test_trains_digits_above_chance_and_reports_everything(digits):
    result = train_child(tiny_arch(), digits, Recipe(epochs=4, batch_size=64, lr=0.05, eval_test=True))
    assert result.status == "ok"
    assert result.val_acc > 80  # chance is 10%
    assert result.test_acc is not None and result.test_acc > 70
    assert result.epochs == 4 and len(result.history) == 4
    assert result.images_per_s > 0 and result.wall_s > 0 and result.device_s >= result.wall_s * 0.99
    assert result.params == sum(p.numel() for p in build_model(tiny_arch()).parameters())


def test_same_seed_same_result(digits):
    recipe = Recipe(epochs=1, batch_size=64, seed=3)
    a, b = train_child(tiny_arch(), digits, recipe), train_child(tiny_arch(), digits, recipe)
    assert a.val_acc == b.val_acc and a.train_loss == b.train_loss


def test_the_callers_torch_seed_and_threads_are_left_as_they_were(digits):
    recipe = Recipe(epochs=1, batch_size=64, seed=3, threads=1)
    threads = torch.get_num_threads()
    first = train_child(tiny_arch(), digits, recipe)
    torch.manual_seed(12345)
    torch.set_num_threads(threads + 1)  # a value the recipe's threads=1 differs from
    try:
        rng = torch.get_rng_state()
        second = train_child(tiny_arch(), digits, recipe)
        assert torch.equal(torch.get_rng_state(), rng)
        assert torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)
    assert (second.val_acc, second.train_loss) == (first.val_acc, first.train_loss)  # the caller's seed does not leak in


def test_divergence_is_reported_not_raised(digits):
    result = train_child(tiny_arch(), digits, Recipe(epochs=3, lr=1e6, grad_clip=0, label_smoothing=0))
    assert result.status == "diverged"
    assert result.epochs == 1


def test_out_of_memory_is_reported_not_raised(digits, monkeypatch):
    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr("nas.train.trainer._train", boom)
    result = train_child(tiny_arch(), digits, Recipe(epochs=1))
    assert result.status == "failed: out of memory: CUDA out of memory (simulated)"
    assert "OutOfMemoryError" in result.error


def test_a_cpu_allocation_failure_counts_as_out_of_memory(digits):
    # A hidden layer of 1e10 units asks the CPU allocator for hundreds of GB: a RuntimeError, at once.
    arch = Arch((1, 8, 8), 10, tiny_arch().stem, tiny_arch().stages, Head(hidden=(10**10,)))
    result = train_child(arch, digits, Recipe(epochs=1))
    assert result.status.startswith("failed: out of memory: ")
    assert "can't allocate memory" in result.status and "Traceback" in result.error


def test_any_exception_of_a_child_is_a_failed_status_with_its_traceback(digits):
    result = train_child(Arch((1, 8, 8), 10, tiny_arch().stem, tiny_arch().stages, Head(dropout=5.0)), digits,
                         Recipe(epochs=1))
    assert result.status == "failed: ValueError: dropout probability has to be between 0 and 1, but got 5.0"
    assert result.error.startswith("Traceback") and result.epochs == 0


def test_early_stop_callback(digits):
    result = train_child(tiny_arch(), digits, Recipe(epochs=5), on_epoch=lambda m: m["epoch"] >= 2)
    assert result.epochs == 2


def test_lower_resolution_proxy_and_train_fraction():
    splits = load_splits("synthetic", n_train=256, n_test=64, shape=(3, 16, 16), classes=4, seed=0)
    arch = Arch((3, 16, 16), 4, (Block.make("conv", 8, 1),), ((Block.make("basic", 8, 2),),), Head())
    result = train_child(arch, splits, Recipe(epochs=1, batch_size=32, resolution=8, train_fraction=0.5))
    assert result.status == "ok"
    assert result.images_per_s > 0


def test_checkpoint_round_trip_with_weights_only(tmp_path, digits):
    path = tmp_path / "child.pt"
    train_child(tiny_arch(), digits, Recipe(epochs=1), checkpoint=path)
    state, arch, metrics = load_checkpoint(path)
    assert arch == tiny_arch().with_io((1, 8, 8), 10)
    model = build_model(arch)
    model.load_state_dict(state)  # strict: the names match the builder's
    assert metrics["status"] == "ok"
    assert not list(tmp_path.glob(".child.pt.*"))  # no temp file left behind


def test_checkpoint_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "arch": Evil()}, path)
    with pytest.raises(ValueError, match="not a readable nas checkpoint"):
        load_checkpoint(path)


def test_atomic_save_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    model = build_model(tiny_arch())
    save_checkpoint(path, model, tiny_arch(), {"val_acc": 1.0})
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError):
        save_checkpoint(path, model, tiny_arch(), {"val_acc": 2.0})
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".ckpt.pt.*"))


def test_crop_and_flip_keep_shape_and_content():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = random_crop_flip(x, 0, True, gen)
    for i in range(2):  # each image is itself or its mirror
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))
    cropped = random_crop_flip(x, 2, False, gen)
    assert cropped.shape == x.shape


def test_schedules_start_high_and_end_near_zero():
    recipe = Recipe(epochs=10)
    assert lr_at(0, 100, recipe, 10) == pytest.approx(1.0)
    assert lr_at(99, 100, recipe, 10) < 0.01
    one = Recipe(schedule="onecycle")
    assert lr_at(0, 100, one, 10) < 0.1 and lr_at(25, 100, one, 10) == pytest.approx(1.0)


def test_recipe_validation_says_what_to_do():
    with pytest.raises(ValueError, match="schedule must be cosine or onecycle"):
        Recipe(schedule="step")
    with pytest.raises(ValueError, match="train_fraction"):
        Recipe(train_fraction=0)
    for lr in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"lr must be a positive number \(--lr\)"):
            Recipe(lr=lr)
    with pytest.raises(ValueError, match="momentum must be in"):
        Recipe(momentum=1.0)
