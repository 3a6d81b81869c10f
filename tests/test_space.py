"""The search-space language: one contract test over every built-in space, plus error messages."""

from __future__ import annotations

import itertools
import textwrap

import numpy as np
import pytest

from nas.arch import Arch
from nas.model.build import build_model
from nas.model.cost import arch_cost
from nas.search_spaces import builtin_space_files
from nas.space import NotInSpace, load_space
from nas.space.language import SpaceError

BUILTINS = sorted(builtin_space_files())


def test_builtins_are_the_issue_list():
    assert set(BUILTINS) == {"resnet_like", "mobilenet_like", "vgg_like", "nasbench201", "nasbench_macro"}


@pytest.mark.parametrize("name", BUILTINS)
def test_space_contract(name):
    space = load_space(name)
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = space.sample_values(rng)
        arch = space.decode(values)
        assert Arch.from_json(arch.to_json()) == arch
        assert space.encode(arch) == space.canonical(values)
        assert space.contains(arch)
        mutated = space.mutate_values(values, rng)
        both = [a and b for a, b in zip(space.active(values), space.active(mutated))]
        changed = [k for k, (a, b) in enumerate(zip(space.canonical(values), mutated)) if a != b and both[k]]
        assert len(changed) == 1  # exactly one decision active before and after moved
        assert space.decode(mutated).arch_id != arch.arch_id
    # same seed, same architectures
    a = [space.sample(np.random.default_rng(7)).arch_id for _ in range(3)]
    assert len(set(a)) == 1


@pytest.mark.parametrize("name", BUILTINS)
def test_every_sampled_arch_builds_with_exact_cost(name):
    """Analytic params equal the built module's for samples of every space."""
    space = load_space(name)
    rng = np.random.default_rng(1)
    for _ in range(4):
        arch = space.sample(rng)
        model = build_model(arch)
        assert arch_cost(arch).params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", BUILTINS)
def test_channel_rules_hold_for_builtins(name):
    load_space(name).check_channels(samples=64)


def test_size_is_exact_by_brute_force():
    """size() equals the number of distinct canonical assignments, on a space with conditions."""
    space = load_space("vgg_like")
    seen = {tuple(space.canonical(c)) for c in itertools.product(*(range(len(d.options)) for d in space.decisions))}
    assert space.size() == len(seen) == 8424
    assert load_space("nasbench201").size() == 15625
    assert load_space("nasbench_macro").size() == 6561


def test_sampling_is_uniform_over_architectures():
    """With conditions, uniform per architecture means 3-stage nets are rarer than 5-stage ones."""
    space = load_space("vgg_like")
    rng = np.random.default_rng(0)
    counts = {3: 0, 4: 0, 5: 0}
    for _ in range(2000):
        counts[len(space.sample(rng).stages)] += 1
    # 3 stages: 3^3 depths, 4: 3^4, 5: 3^5 (times the same shared choices)
    expected = np.array([27, 81, 243]) / 351 * 2000
    assert np.allclose(list(counts.values()), expected, rtol=0.2)


def test_nasbench201_decisions_follow_the_arch_string():
    space = load_space("nasbench201")
    assert [d.name for d in space.decisions] == ["cell.1<-0", "cell.2<-0", "cell.2<-1", "cell.3<-0", "cell.3<-1", "cell.3<-2"]
    assert space.decisions[0].options == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _nb201_closed_form(values):
    n1, n3 = values.count(2), values.count(3)
    return round((0.073306 + 0.028 * n1 + 0.24304 * n3) * 1e6), round((7.78305 + 3.93216 * n1 + 35.38944 * n3) * 1e6)


def test_nasbench201_cost_matches_the_benchmark_for_all_cells():
    space = load_space("nasbench201")
    for values in itertools.islice(itertools.product(range(5), repeat=6), 0, None, 7):  # 2,233 cells
        cost = arch_cost(space.decode(list(values)))
        params, flops = _nb201_closed_form(list(values))
        assert cost.params == params
        assert cost.conv_linear_macs + 10 == flops  # the benchmark counts the 10 classifier bias adds


# NAS-Bench-Macro per-position (params, MACs) for options 0/1/2, from the benchmark's closed form
MACRO = [
    [(2176, 524288), (10592, 4939776), (24128, 10665984)],
    [(0, 0), (27200, 6733824), (60416, 15040512)],
    [(8448, 524288), (39616, 4829184), (85120, 10051584)],
    [(0, 0), (103552, 6512640), (219136, 13811712)],
    [(0, 0), (103552, 6512640), (219136, 13811712)],
    [(33280, 524288), (152960, 4773888), (317696, 9744384)],
    [(0, 0), (403712, 6402048), (831488, 13197312)],
    [(0, 0), (403712, 6402048), (831488, 13197312)],
]


def test_nasbench_macro_cost_matches_the_benchmark_for_all_networks():
    space = load_space("nasbench_macro")
    for values in itertools.product(range(3), repeat=8):
        cost = arch_cost(space.decode(list(values)))
        assert cost.params == 343978 + sum(MACRO[i][v][0] for i, v in enumerate(values))
        assert cost.conv_linear_macs == 6140416 + sum(MACRO[i][v][1] for i, v in enumerate(values))
    best = arch_cost(space.decode([2, 2, 2, 1, 2, 2, 2, 0]))
    assert (best.params, best.conv_linear_macs) == (1985514, 85164544)


def test_constraints_are_enforced_at_sampling():
    space = load_space("resnet_like")
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert arch_cost(space.sample(rng, max_macs=20e6)).macs <= 20e6
    with pytest.raises(ValueError, match="raise the limits"):
        space.sample(rng, max_macs=1, max_tries=5)


def test_encode_rejects_foreign_architectures():
    from nas.model.reference import reference

    with pytest.raises(NotInSpace):
        load_space("resnet_like").encode(reference("resnet18"))
    assert not load_space("nasbench201").contains(load_space("nasbench_macro").decode([0] * 8))


def test_with_io_binds_a_data_set_shape():
    space = load_space("resnet_like").with_io((1, 8, 8), 10)
    arch = space.sample(np.random.default_rng(0))
    assert arch.input == (1, 8, 8)
    assert space.decode(space.encode(arch)) == arch


GOOD = """
name: tiny
input: {channels: 3, size: 16}
classes: 5
stem: {channels: 8}
channels: {rule: explicit}
stage_defaults:
  stride: 2
  depth: {choice: [1, 2]}
  block:
    type: {choice: [basic, resnext]}
    groups: {choice: [2, 4], when: {type: resnext}}
stages:
  - {width: 8, stride: 1}
  - {width: 16}
  - {width: {choice: [24, 32]}}
"""


def _write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_user_space_from_any_path(tmp_path):
    space = load_space(_write(tmp_path, GOOD))
    # per stage: depth 2 x (basic + resnext x 2 groups) = 2 * 3 per stage ... and 2 widths on the last
    assert space.size() == 6 * 6 * 6 * 2
    names = [d.name for d in space.decisions]
    assert "stages[2].block.groups" in names and "stages[2].width" in names
    groups = next(d for d in space.decisions if d.name == "stages[0].block.groups")
    assert groups.condition == (("stages[0].block.type", frozenset({1})),)


@pytest.mark.parametrize("mutation, message", [
    (("type: {choice: [basic, resnext]}", "type: {choice: [basic, botleneck]}"),
     "space.yaml: stage_defaults.block.type: unknown block type 'botleneck' (known: basic, bottleneck,"),
    (("groups: {choice: [2, 4], when: {type: resnext}}", "groups: {choice: [2, 4]}"),
     "space.yaml: stage_defaults.block.groups: block 'basic' has no option 'groups'"),
    (("classes: 5", "classes: five"), "space.yaml: classes: must be a positive integer"),
    (("stem: {channels: 8}", "stem: {chanels: 8}"), "space.yaml: stem.chanels: unknown field"),
    (("- {width: 16}", "- {width: 16, depht: 2}"), "space.yaml: stages[1].depht: unknown field"),
    (("depth: {choice: [1, 2]}", "depth: {choice: []}"), "space.yaml: stage_defaults.depth.choice: must be a non-empty list"),
    (("channels: {rule: explicit}", "channels: {rule: golden}"), "space.yaml: channels.rule: unknown rule 'golden'"),
    (("name: tiny", "name: [tiny"), "space.yaml: line"),
])
def test_errors_name_the_file_and_the_field(tmp_path, mutation, message):
    old, new = mutation
    assert old in GOOD
    with pytest.raises(SpaceError) as err:
        load_space(_write(tmp_path, GOOD.replace(old, new)))
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_channel_incompatibility_is_caught_before_sampling(tmp_path):
    text = GOOD.replace("type: {choice: [basic, resnext]}", "type: conv\n    groups: {choice: [3, 4]}")
    text = text.replace("    groups: {choice: [2, 4], when: {type: resnext}}\n", "")
    with pytest.raises(SpaceError, match=r"space.yaml: channels: s1.b1: conv groups=3 must divide"):
        load_space(_write(tmp_path, text))


# ---------------------------------------------------------------------------- sampling at the input shape (issue 16)

def test_sampling_at_a_small_input_yields_only_buildable_architectures():
    space = load_space("vgg_like").with_io((1, 8, 8), 10)
    raw = np.random.default_rng(0)
    assert any(space.unfit(space.sample_values(raw)) for _ in range(50))  # the space does hold misfits here
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(50)]
    for arch in archs:
        arch_cost(arch)  # raises for a misfit
    mutants = [space.mutate(arch, rng) for arch in archs[:20]]
    assert all(space.unfit(space.encode(m)) is None for m in mutants)
    assert any(m != a for m, a in zip(mutants, archs))  # still moving


def test_a_space_too_deep_for_the_input_is_one_clear_error():
    space = load_space("vgg_like").with_io((1, 2, 2), 10)
    with pytest.raises(ValueError) as err:
        space.sample(np.random.default_rng(0))
    message = str(err.value)
    assert message.startswith("vgg_like: no architecture fits a 1x2x2 input after 1000 tries (")
    assert "does not fit" in message and message.endswith("use a larger --input or fewer downsampling stages")


@pytest.mark.parametrize("name", ["vgg_like", "resnet_like", "mobilenet_like", "nasbench_macro"])
def test_the_torch_free_fit_bound_never_passes_a_misfit(name):
    from nas.space.search_space import _surely_fits

    base, rng = load_space(name), np.random.default_rng(3)
    passed = 0
    for size in (1, 2, 3, 4, 6, 8, 12, 32):
        space = base.with_io((base.spec.input[0], size, size), base.spec.classes)
        for _ in range(20):
            arch = space.decode(space.sample_values(rng))
            if _surely_fits(arch):
                passed += 1
                arch_cost(arch)  # raises for a misfit the bound let through
    assert passed  # the bound does spare the cost walk
