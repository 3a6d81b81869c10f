"""The weight-sharing supernet: children are exact views of shared banks, training, BN recalibration, Ray Train."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from nas.arch import Arch, Block
from nas.data import load_splits
from nas.model.build import build_model
from nas.model.registries import BLOCKS, CELL_OPS
from nas.oneshot.supernet import Supernet, calibration_batches, evaluate_inherited, inherited_model, region
from nas.oneshot.training import SupernetRecipe, extremes, train_supernet, train_supernet_distributed
from nas.search_spaces import builtin_space_files
from nas.space import load_space
from nas.train import DeviceData

SPACES = list(builtin_space_files())
DIGITS_IO = ((1, 8, 8), 10)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster and immune to other processes on the cores."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits")


def space_for(name: str):
    """Digits-sized spaces, except those whose deepest children need their own 32x32 input."""
    space = load_space(name)
    return space if name in ("nasbench201", "vgg_like") else space.with_io(*DIGITS_IO)


def pick(space, **by_name) -> Arch:
    """The child with the named decisions set (dots in names written as __), others at option 0."""
    index = {d.name.replace(".", "__").replace("[", "_").replace("]", ""): k for k, d in enumerate(space.decisions)}
    values = [0] * len(space.decisions)
    for name, option in by_name.items():
        values[index[name]] = space.decisions[index[name]].options.index(option)
    return space.decode(values)


def held(data) -> tuple[DeviceData, DeviceData]:
    info = data.info
    return (DeviceData(data.train_x, data.train_y, info.mean, info.std, torch.device("cpu")),
            DeviceData(data.val_x, data.val_y, info.mean, info.std, torch.device("cpu")))


def used_param_keys(net: Supernet, arch: Arch) -> set[str]:
    return {e.key for e in net._builder.entries(arch) if e.spec.param}


def assert_exact_child(net: Supernet, arch: Arch) -> None:
    """The child through the supernet is the built child with the inherited weights, in eval and train mode."""
    model = build_model(arch)
    model.load_state_dict(net.child_state_dict(arch), strict=True)
    x = torch.randn(3, *arch.input, generator=torch.Generator().manual_seed(0))
    net.eval(), model.eval()
    assert torch.equal(net(x, arch), model(x))
    net.train(), model.train()
    torch.manual_seed(1)
    out = net(x, arch)
    torch.manual_seed(1)
    assert torch.equal(out, model(x))
    # BatchNorm running stats of the supernet child moved exactly as the built child's did
    after = net.child_tensors(arch)
    assert all(torch.equal(after[k], v) for k, v in model.state_dict().items())
    net.zero_grad(set_to_none=True)
    out.square().mean().backward()
    with_grad = {k for k, p in net.bank_params().items() if p.grad is not None}
    assert with_grad == used_param_keys(net, arch)
    assert len(with_grad) < len(net.bank_params())  # the other candidates were not touched


@pytest.mark.parametrize("name", SPACES)
def test_a_child_through_the_supernet_is_exactly_the_built_child(name):
    space = space_for(name)
    net = Supernet(space, pool=16, seed=0)
    assert_exact_child(net, space.sample(np.random.default_rng(3)))


def either(first: dict, second: dict) -> dict:
    """A per-block choice between two block variants, so the supernet holds both."""
    return {"choice": [first, second], "per": "block"}


def stage(block, stride: int = 1, widths: tuple[int, ...] = (8, 16), **fields) -> dict:
    """A stage of one or two blocks, with a choice of widths where there are two, so banks are shared across them."""
    width = {"choice": list(widths)} if len(widths) > 1 else widths[0]
    return {"width": width, "depth": {"choice": [1, 2]}, "stride": stride, "block": block, **fields}


def cell(ops: list[str]) -> dict:
    """A three-node cell choosing between ops on every edge."""
    return {"nodes": 3, "ops": {"choice": ops}}


# Block type -> a digits-sized space (stages, optional cell) in which that type appears beside another choice.
# A cell keeps its input's shape, so cell stages have the stem's width and share through their ops and depth.
BLOCK_SPACES = {
    "basic": {"stages": [stage(either({"type": "basic", "se_ratio": 0.25, "act": "silu"},
                                      {"type": "bottleneck", "mid_ratio": 0.5}))]},
    "bottleneck": {"stages": [stage(either({"type": "bottleneck", "mid_ratio": 0.25}, {"type": "basic"}))]},
    "resnext": {"stages": [stage(either({"type": "resnext", "groups": 4}, {"type": "conv"}), widths=(16, 32))]},
    "dwsep": {"stages": [stage(either({"type": "dwsep", "kernel": 5, "se_ratio": 0.25}, {"type": "conv"}))]},
    "mbconv": {"stages": [stage(either({"type": "mbconv", "expansion": 4, "se_ratio": 0.25, "act": "hardswish"},
                                       {"type": "basic"}))]},
    "conv": {"stages": [stage(either({"type": "conv", "groups": 2, "bn": False}, {"type": "dwsep", "kernel": 5}))]},
    "identity": {"stages": [stage(either({"type": "identity"}, {"type": "mbconv"})),
                            stage(either({"type": "identity"}, {"type": "conv"}), stride=2, widths=(16, 24))]},
    # a pool keeps its input's channels, so it opens a downsampling stage as its transition
    "pool": {"stages": [stage({"type": "conv"}),
                        stage({"type": "conv"}, stride=2, transition={"type": "pool", "kernel": 2, "mode": "avg"})]},
    "cell": {"cell": cell(["nor_conv_3x3", "skip_connect", "avg_pool_3x3"]), "stages": [stage({"type": "cell"}, widths=(8,))]},
    # the NAS-Bench-201 reduction opens a downsampling stage of cells
    "nb201_residual": {"cell": cell(["nor_conv_3x3", "nor_conv_1x1"]),
                       "stages": [stage({"type": "cell"}, widths=(8,)),
                                  stage({"type": "cell"}, stride=2, widths=(16, 24),
                                        transition={"type": "nb201_residual"})]},
}


def example_space(tmp_path, name: str, parts: dict):
    """The example written as a YAML space file and loaded through the space language."""
    spec = {"name": f"every_{name}", "input": {"channels": 1, "size": 8}, "classes": 10, "stem": {"channels": 8},
            "channels": {"rule": "explicit"}, "head": {"pool": "avg"}, **parts}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_space(path)


def child_using(space, uses) -> Arch:
    """The first seeded sample for which uses(arch) holds."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        if uses(arch):
            return arch
    raise AssertionError(f"no sampled child of {space.name} uses what the example is for")


@pytest.mark.parametrize("name", list(BLOCKS))
def test_every_registered_block_through_the_supernet_is_exactly_the_built_child(name, tmp_path):
    assert name in BLOCK_SPACES, f"block type {name!r} has no example space in BLOCK_SPACES"
    space = example_space(tmp_path, name, BLOCK_SPACES[name])
    net = Supernet(space, pool=16, seed=0)
    assert_exact_child(net, child_using(space, lambda a: any(b.type == name for _, b in a.blocks())))


@pytest.mark.parametrize("op", list(CELL_OPS))
def test_every_cell_operation_through_the_supernet_is_exactly_the_built_child(op, tmp_path):
    other = "nor_conv_3x3" if op == "nor_conv_1x1" else "nor_conv_1x1"
    space = example_space(tmp_path, op, {"cell": cell([op, other]), "stages": [stage({"type": "cell"}, widths=(8,))]})
    net = Supernet(space, pool=16, seed=0)
    uses = lambda a: any(e[2] == op for _, b in a.blocks() if b.type == "cell" for e in b.get("edges"))  # noqa: E731
    assert_exact_child(net, child_using(space, uses))


def test_block_position_shares_weights_and_block_types_do_not():
    space = space_for("resnet_like")
    net = Supernet(space, pool=16)
    base = dict(stem__channels=16, num_stages=3, channels__base=16, stages_0__block__type="basic")
    deep, shallow = pick(space, stages_0__depth=2, **base), pick(space, stages_0__depth=1, **base)
    other = pick(space, **{**base, "stages_0__block__type": "bottleneck"})
    assert "s1.b2/basic/branch.conv1.conv.weight" in used_param_keys(net, deep)
    assert "s1.b1/bottleneck/branch.conv3.conv.weight" in used_param_keys(net, other)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    net.eval()
    before_shallow, before_other = net(x, shallow).detach(), net(x, other).detach()
    basic = {k: net.bank(k).detach().clone() for k in used_param_keys(net, shallow) if k.startswith("s1.b1/basic/")}
    assert basic
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(x, other).square().mean().backward()  # an update through the bottleneck candidate only
    opt.step()
    assert all(torch.equal(net.bank(k), v) for k, v in basic.items())
    opt.zero_grad()
    net(x, deep).square().mean().backward()  # an update through the deeper child of the same type
    opt.step()
    assert not torch.equal(net(x, shallow), before_shallow)
    assert not torch.equal(net(x, other), before_other)  # stem and head are shared by every child


def test_each_operation_on_each_cell_edge_has_its_own_weights():
    space = load_space("nasbench201")
    net = Supernet(space, pool=8)
    conv3, conv1 = space.decode([3] * 6), space.decode([2] + [3] * 5)
    keys3, keys1 = used_param_keys(net, conv3), used_param_keys(net, conv1)
    assert "s1.b2/cell/ops.1<-0/nor_conv_3x3/conv.weight" in keys3
    assert "s1.b2/cell/ops.1<-0/nor_conv_1x1/conv.weight" in keys1
    assert not any("ops.1<-0/nor_conv_3x3" in k for k in keys1)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    net(x, conv1).sum().backward()
    assert net.bank("s1.b2/cell/ops.1<-0/nor_conv_3x3/conv.weight").grad is None
    assert net.bank("s1.b2/cell/ops.2<-0/nor_conv_3x3/conv.weight").grad is not None


def test_elastic_kernel_is_the_centre_crop_and_elastic_width_the_leading_slice():
    space = space_for("mobilenet_like")
    net = Supernet(space, pool=32)
    arch = space.sample(np.random.default_rng(0))
    tensors = net.child_tensors(arch)
    cropped = widened = 0
    for e in net._builder.entries(arch):
        bank = net.bank(e.key)
        if bank.ndim == 4 and bank.shape[2] > e.shape[2]:
            o = (bank.shape[2] - e.shape[2]) // 2
            assert torch.equal(tensors[e.name], bank[:e.shape[0], :e.shape[1], o:o + e.shape[2], o:o + e.shape[3]])
            cropped += 1
        if bank.ndim >= 1 and bank.shape[0] > e.shape[0]:
            assert torch.equal(tensors[e.name].flatten(1) if bank.ndim > 1 else tensors[e.name],
                               bank[region(tuple(bank.shape), e.shape)].flatten(1) if bank.ndim > 1 else bank[:e.shape[0]])
            widened += 1
        if bank.ndim:
            assert tensors[e.name].untyped_storage().data_ptr() == bank.untyped_storage().data_ptr()  # a view
    assert cropped and widened
    k3 = torch.arange(49.0).view(1, 1, 7, 7)
    assert torch.equal(k3[region((1, 1, 7, 7), (1, 1, 3, 3))], torch.tensor([[[[16.0, 17, 18], [23, 24, 25], [30, 31, 32]]]]))


def test_a_bank_grows_for_a_larger_child_and_keeps_its_values():
    space = space_for("resnet_like")
    net = Supernet(space, pool=8)
    small = pick(space, stem__channels=16, num_stages=3, channels__base=16)
    key = "stem.b1/conv/conv.weight"
    old = net.bank(key).detach().clone()
    big_stem = replace(small, stem=(Block.make("conv", 96, kernel=5),))
    version = net.version
    assert not net.fits(big_stem)
    net(torch.randn(2, 1, 8, 8), big_stem)
    grown = net.bank(key)
    assert tuple(grown.shape) == (96, 1, 5, 5) and net.version > version and net.growths >= 1
    assert torch.equal(grown[:old.shape[0], :, 1:4, 1:4], old)  # old 3x3 kernels sit in the centre
    assert torch.equal(net.child_tensors(small)[key.replace("/conv/", ".")], old[:16])


def test_save_and_load_restore_identical_outputs(tmp_path):
    space = space_for("nasbench_macro")
    net = Supernet(space, pool=8, seed=4)
    arch = space.sample(np.random.default_rng(1))
    x = torch.randn(4, 1, 8, 8)
    net.train()
    net(x, arch)  # move some running stats away from their initial values
    net.eval()
    net.save(tmp_path / "supernet.pt")
    back = Supernet.load(tmp_path / "supernet.pt")
    back.eval()
    assert back.specs == net.specs and back.pool_values == net.pool_values
    assert torch.equal(back(x, arch), net(x, arch))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))


def test_bn_recalibration_sets_running_stats_to_the_calibration_data():
    space = space_for("resnet_like")
    net = Supernet(space, pool=8)
    arch = pick(space, stem__channels=16, num_stages=3, channels__base=16)
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 3 + 1
    model = inherited_model(net, arch, [x])
    assert not model.training and not model.stem.b1.bn.training
    conv = F.conv2d(x, model.stem.b1.conv.weight, padding=1)
    torch.testing.assert_close(model.stem.b1.bn.running_mean, conv.mean((0, 2, 3)))
    torch.testing.assert_close(model.stem.b1.bn.running_var, conv.var((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert torch.equal(net.bank("stem.b1/conv/bn.running_var")[:16], torch.ones(16))  # banks untouched


def test_spos_training_lowers_the_loss_and_children_inherit_useful_weights(digits):
    space = space_for("nasbench_macro")
    net = Supernet(space, pool=16)
    recipe = SupernetRecipe(epochs=2, batch_size=32, lr=0.1, seed=0)
    stats = train_supernet(net, digits, recipe)
    history = stats["history"]
    assert stats["steps"] == 2 * (len(digits.train_y) // 32) and stats["children"] == stats["steps"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    train, val = held(digits)
    calib = calibration_batches(train, batches=1, batch_size=256, seed=0)
    rng = np.random.default_rng(7)
    accs = [evaluate_inherited(net, space.sample(rng), train, val, calib=calib)["val_acc"] for _ in range(3)]
    assert np.mean(accs) > 20.0  # chance is 10%; about 34% after these two epochs


def small_splits(data, n: int = 192):
    return replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n])


def test_same_seed_same_children_and_same_banks(digits):
    data = small_splits(digits)
    space = space_for("resnet_like")
    recipe = SupernetRecipe(epochs=1, batch_size=64, seed=3)
    runs = []
    for _ in range(2):
        net = Supernet(space, pool=8, seed=3)
        stats = train_supernet(net, data, recipe)
        runs.append((net.state_dict(), stats))
    (a, sa), (b, sb) = runs
    assert sa["unique_children"] == sb["unique_children"] == 3 and sa["train_loss"] == sb["train_loss"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sandwich_trains_the_largest_and_the_smallest_child(digits):
    data = small_splits(digits, 128)
    space = space_for("nasbench_macro")
    net = Supernet(space, pool=16)
    largest, smallest = extremes(net, None, None)
    assert largest.arch_id != smallest.arch_id
    before = {a.arch_id: net.child_state_dict(a) for a in (largest, smallest)}
    stats = train_supernet(net, data, SupernetRecipe(epochs=1, batch_size=64, rule="sandwich"))
    assert stats["steps"] == 2 and stats["children"] == 6
    for arch in (largest, smallest):
        after = net.child_state_dict(arch)
        convs = [k for k, v in after.items() if v.ndim == 4]
        assert convs and all(not torch.equal(after[k], before[arch.arch_id][k]) for k in convs)


def test_recipe_validation_says_what_to_do():
    with pytest.raises(ValueError, match="rule must be one of spos, sandwich"):
        SupernetRecipe(rule="greedy")
    with pytest.raises(ValueError, match="epochs and batch_size"):
        SupernetRecipe(epochs=0)


def test_training_refuses_a_supernet_for_another_input(digits):
    net = Supernet(load_space("nasbench_macro"), pool=4)
    with pytest.raises(ValueError, match=r"space.with_io\(\(1, 8, 8\), 10\)"):
        train_supernet(net, digits, SupernetRecipe(epochs=1))


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ray_train_runs_the_supernet_on_cpu_workers(digits, local_ray, tmp_path, workers):
    data = small_splits(digits, 256)
    recipe = SupernetRecipe(epochs=1, batch_size=128, threads=1, seed=2)
    net, stats = train_supernet_distributed("nasbench_macro", data, recipe, num_workers=workers, use_gpu=False,
                                            storage_path=tmp_path, pool=8)
    assert stats["steps"] == 2 and stats["children"] == 2 and stats["growths"] == 0
    fresh = Supernet(net.space, pool=8, seed=2)
    assert net.specs == fresh.specs  # every rank built the same banks from the shared seed
    changed = [k for k in net.bank_params() if not torch.equal(net.bank(k), fresh.bank(k))]
    assert changed and len(changed) < len(net.specs)
    assert net(torch.randn(2, 1, 8, 8), net.space.sample(np.random.default_rng(0))).shape == (2, 10)


def test_spos_children_honour_the_cost_limits():
    from nas.model.cost import arch_cost
    from nas.oneshot.training import ChildSampler

    space = space_for("resnet_like")
    net = Supernet(space, pool=8)
    limit = 1_000_000
    sampler = ChildSampler(net, SupernetRecipe(seed=5), max_macs=limit, max_params=None, grow=True)
    archs = [a for _ in range(20) for a in sampler.step()]
    assert all(arch_cost(a).macs <= limit for a in archs) and sampler.sampled == 20
