"""Reference architectures, laid out as torchvision builds them, addressable by name."""

from __future__ import annotations

from collections.abc import Callable

from nas.arch import Arch, Block, Head
from nas.model.channels import make_divisible
from nas.registry import Registry

REFERENCES: Registry[Callable[[], Arch]] = Registry("reference architecture")  # all defined in this module
IMAGENET = (3, 224, 224)

# Published figures for the references: (exact parameter count, documented GFLOPS, which are
# multiply-adds) from torchvision's model documentation; tests and benchmarks compare against them.
TORCHVISION_FIGURES = {
    "resnet18": (11_689_512, 1.814),
    "resnet34": (21_797_672, 3.664),
    "resnet50": (25_557_032, 4.089),
    "resnet101": (44_549_160, 7.801),
    "resnet152": (60_192_808, 11.514),
    "resnext50_32x4d": (25_028_904, 4.23),
    "resnext101_32x8d": (88_791_336, 16.41),
    "wide_resnet50_2": (68_883_240, 11.4),
    "mobilenet_v2": (3_504_872, 0.301),
    "vgg16": (138_357_544, 15.47),
    "alexnet": (61_100_840, 0.714),
}


def register_reference(fn: Callable[[], Arch]) -> Callable[[], Arch]:
    """Decorator: the function's name becomes the reference's name."""
    return REFERENCES.add(fn.__name__, fn)


def reference(name: str) -> Arch:
    """The reference architecture called name; the error lists every known one."""
    return REFERENCES[name]()


def _imagenet_stem() -> tuple[Block, ...]:
    return (Block.make("conv", 64, 2, kernel=7), Block.make("pool", 64, 2, kernel=3, padding=1))


def _resnet(name: str, block: str, depths: tuple[int, ...], expansion: int = 1, **options) -> Arch:
    stages = []
    for i, depth in enumerate(depths):
        out = 64 * 2 ** i * expansion
        stages.append(tuple(Block.make(block, out, 2 if (i > 0 and j == 0) else 1, **options) for j in range(depth)))
    return Arch(IMAGENET, 1000, _imagenet_stem(), tuple(stages), Head(), name=name)


@register_reference
def resnet18() -> Arch:
    return _resnet("resnet18", "basic", (2, 2, 2, 2))


@register_reference
def resnet34() -> Arch:
    return _resnet("resnet34", "basic", (3, 4, 6, 3))


@register_reference
def resnet50() -> Arch:
    return _resnet("resnet50", "bottleneck", (3, 4, 6, 3), 4)


@register_reference
def resnet101() -> Arch:
    return _resnet("resnet101", "bottleneck", (3, 4, 23, 3), 4)


@register_reference
def resnet152() -> Arch:
    return _resnet("resnet152", "bottleneck", (3, 8, 36, 3), 4)


@register_reference
def resnext50_32x4d() -> Arch:
    return _resnet("resnext50_32x4d", "resnext", (3, 4, 6, 3), 4, mid_ratio=0.5, groups=32)


@register_reference
def resnext101_32x8d() -> Arch:
    return _resnet("resnext101_32x8d", "resnext", (3, 4, 23, 3), 4, mid_ratio=1.0, groups=32)


@register_reference
def wide_resnet50_2() -> Arch:
    return _resnet("wide_resnet50_2", "bottleneck", (3, 4, 6, 3), 4, mid_ratio=0.5)


@register_reference
def mobilenet_v2() -> Arch:
    # (expansion, channels, repeats, stride) rows of the MobileNetV2 paper's table 2
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    stages = []
    for t, c, n, s in settings:
        out = make_divisible(c, 8)
        stages.append(tuple(Block.make("mbconv", out, s if j == 0 else 1, expansion=t, kernel=3) for j in range(n)))
    stem = (Block.make("conv", 32, 2, kernel=3, act="relu6"),)
    return Arch(IMAGENET, 1000, stem, tuple(stages), Head(conv=1280, act="relu6", dropout=0.2), name="mobilenet_v2")


@register_reference
def vgg16() -> Arch:
    stages = []
    for width, depth in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        convs = tuple(Block.make("conv", width, 1, kernel=3, bn=False) for _ in range(depth))
        stages.append(convs + (Block.make("pool", width, 2, kernel=2),))
    head = Head(pool_size=7, hidden=(4096, 4096), dropout=0.5)
    return Arch(IMAGENET, 1000, (), tuple(stages), head, name="vgg16")


@register_reference
def alexnet() -> Arch:
    stem = (Block.make("conv", 64, 4, kernel=11, padding=2, bn=False), Block.make("pool", 64, 2, kernel=3))
    stages = (
        (Block.make("conv", 192, 1, kernel=5, padding=2, bn=False), Block.make("pool", 192, 2, kernel=3)),
        (Block.make("conv", 384, 1, kernel=3, bn=False), Block.make("conv", 256, 1, kernel=3, bn=False),
         Block.make("conv", 256, 1, kernel=3, bn=False), Block.make("pool", 256, 2, kernel=3)),
    )
    head = Head(pool_size=6, hidden=(4096, 4096), dropout=0.5)
    return Arch(IMAGENET, 1000, stem, stages, head, name="alexnet")
