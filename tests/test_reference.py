"""Reference architectures against torchvision's published parameter counts and GFLOPS.

torchvision's model docs list "GFLOPS" that are multiply-adds of conv + linear layers at 224x224;
the parameter counts are exact. torchvision itself is not needed: the numbers are copied here.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.model.build import build_model
from nas.model.cost import arch_cost
from nas.model.reference import REFERENCES, reference
from nas.model.reference import TORCHVISION_FIGURES as TORCHVISION

MACS_TOLERANCE = 0.005  # relative; torchvision rounds its GFLOPS to 3-4 significant digits


def test_every_reference_has_torchvision_numbers():
    assert set(REFERENCES) == set(TORCHVISION)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_analytic_cost(name):
    arch = reference(name)
    assert arch.name == name and arch.input == (3, 224, 224) and arch.classes == 1000
    params, gflops = TORCHVISION[name]
    cost = arch_cost(arch)
    assert cost.params == params
    assert abs(cost.conv_linear_macs / 1e9 - gflops) <= MACS_TOLERANCE * gflops, cost.conv_linear_macs
    detail = arch_cost(arch, detail=True)
    assert (detail.params, detail.macs, detail.conv_linear_macs, detail.activation_bytes) == \
        (cost.params, cost.macs, cost.conv_linear_macs, cost.activation_bytes)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "alexnet"])
def test_reference_built_params(name):
    model = build_model(reference(name))
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION[name][0]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_reference_flop_counter_small_input(name):
    arch = reference(name).with_io((3, 64, 64), 10)
    cost = arch_cost(arch, detail=True)
    model = build_model(arch).eval()
    assert cost.params == sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert counter.get_total_flops() == 2 * cost.conv_linear_macs
    for row in cost.layers:  # table names are module names
        if row.kind in ("conv", "linear", "bn"):
            module = model.get_submodule(row.name)
            assert isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
            assert sum(p.numel() for p in module.parameters()) == row.params
