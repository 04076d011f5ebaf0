"""Every size formula against torch itself: the same sizes where torch accepts the input, and an
error exactly where torch refuses it."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnngraph.ops import OPS, ShapeError

Small = st.integers(1, 24)


def torch_hw(module: nn.Module, c: int, h: int, w: int) -> tuple[int, ...] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            shape = tuple(module(torch.zeros(1, c, h, w)).shape[1:])
        except (RuntimeError, ValueError):
            return None
    # torch returns an empty tensor for some configurations (a transposed conv whose padding
    # eats the whole output); cnngraph reports those as errors (CG501) on purpose.
    return None if 0 in shape else shape


def ours(kind: str, fields: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return OPS[kind].model_validate(fields).infer([shape])
    except ShapeError:
        return None


def agree(
    kind: str, fields: dict[str, Any], make: Callable[[], nn.Module], c: int, h: int, w: int
) -> None:
    try:
        module = make()
    except ValueError:  # torch refuses the configuration itself
        with pytest.raises((ShapeError, ValueError)):
            OPS[kind].model_validate(fields).infer([(c, h, w)])
        return
    assert ours(kind, fields, (c, h, w)) == torch_hw(module, c, h, w), (kind, fields, (c, h, w))


# Table tests: named cases worth keeping in view, each checked against torch.
CONV_TABLE = [
    ("resnet stem", dict(kernel_size=7, stride=2, padding=3), 224, (112, 112)),
    ("3x3 stride 2 odd size", dict(kernel_size=3, stride=2, padding=1), 7, (4, 4)),
    ("dilation 2", dict(kernel_size=3, padding=2, dilation=2), 10, (10, 10)),
    ("same, even kernel", dict(kernel_size=4, padding="same"), 9, (9, 9)),
    ("valid", dict(kernel_size=5, padding="valid"), 32, (28, 28)),
    ("asymmetric", dict(kernel_size=[1, 7], padding=[0, 3]), 17, (17, 17)),
    ("alexnet 11x11/4", dict(kernel_size=11, stride=4, padding=2), 224, (55, 55)),
]


@pytest.mark.parametrize(
    ("case", "fields", "n", "expected"), CONV_TABLE, ids=[c[0] for c in CONV_TABLE]
)
def test_conv_table(case: str, fields: dict[str, Any], n: int, expected: tuple[int, int]) -> None:
    out = ours("conv2d", {"out_channels": 2, **fields}, (3, n, n))
    assert out == (2, *expected)
    assert out == torch_hw(nn.Conv2d(3, 2, **fields), 3, n, n)


POOL_TABLE = [
    ("googlenet ceil", "max_pool2d", dict(kernel_size=3, stride=2, ceil_mode=True), 112, (56, 56)),
    (
        "ceil drops the window starting in padding",
        "max_pool2d",
        dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
        5,
        (3, 3),
    ),
    (
        "ceil, last window kept",
        "avg_pool2d",
        dict(kernel_size=3, stride=2, ceil_mode=True),
        6,
        (3, 3),
    ),
    ("floor", "max_pool2d", dict(kernel_size=3, stride=2), 6, (2, 2)),
    ("resnet maxpool", "max_pool2d", dict(kernel_size=3, stride=2, padding=1), 112, (56, 56)),
    ("dilated", "max_pool2d", dict(kernel_size=3, stride=1, dilation=2), 9, (5, 5)),
]


@pytest.mark.parametrize(
    ("case", "kind", "fields", "n", "expected"), POOL_TABLE, ids=[c[0] for c in POOL_TABLE]
)
def test_pool_table(
    case: str, kind: str, fields: dict[str, Any], n: int, expected: tuple[int, int]
) -> None:
    module = nn.MaxPool2d(**fields) if kind == "max_pool2d" else nn.AvgPool2d(**fields)
    out = ours(kind, fields, (3, n, n))
    assert out == (3, *expected)
    assert out == torch_hw(module, 3, n, n)


TRANSPOSED_TABLE = [
    ("dcgan first", dict(kernel_size=4, stride=1, padding=0), 1, (4, 4)),
    ("dcgan up", dict(kernel_size=4, stride=2, padding=1), 8, (16, 16)),
    ("unet up", dict(kernel_size=2, stride=2), 28, (56, 56)),
    ("output_padding", dict(kernel_size=3, stride=2, padding=1, output_padding=1), 7, (14, 14)),
    ("dilated", dict(kernel_size=3, stride=2, dilation=2, output_padding=1), 5, (14, 14)),
]


@pytest.mark.parametrize(
    ("case", "fields", "n", "expected"), TRANSPOSED_TABLE, ids=[c[0] for c in TRANSPOSED_TABLE]
)
def test_conv_transpose_table(
    case: str, fields: dict[str, Any], n: int, expected: tuple[int, int]
) -> None:
    out = ours("conv_transpose2d", {"out_channels": 2, **fields}, (3, n, n))
    assert out == (2, *expected)
    assert out == torch_hw(nn.ConvTranspose2d(3, 2, **fields), 3, n, n)


@pytest.mark.parametrize(
    ("size", "n", "expected"),
    [(1, 7, (1, 1)), ([4, 4], 9, (4, 4)), ([3, None], 10, (3, 10)), (5, 3, (5, 5))],
)
def test_adaptive_table(size: Any, n: int, expected: tuple[int, int]) -> None:
    for kind, module in (
        ("adaptive_avg_pool2d", nn.AdaptiveAvgPool2d),
        ("adaptive_max_pool2d", nn.AdaptiveMaxPool2d),
    ):
        torch_size = tuple(size) if isinstance(size, list) else size
        out = ours(kind, {"output_size": size}, (2, n, n))
        assert out == (2, *expected)
        assert out == torch_hw(module(torch_size), 2, n, n)


# Properties: random configurations, including ones torch refuses.


@settings(max_examples=300, deadline=None)
@given(
    h=Small,
    w=Small,
    k=st.integers(1, 7),
    k2=st.integers(1, 7),
    s=st.integers(1, 4),
    p=st.integers(0, 4),
    d=st.integers(1, 3),
    same=st.booleans(),
)
def test_conv2d_agrees_with_torch(
    h: int, w: int, k: int, k2: int, s: int, p: int, d: int, same: bool
) -> None:
    padding: Any = "same" if same else p
    fields = dict(kernel_size=[k, k2], stride=s, padding=padding, dilation=d)
    agree(
        "conv2d",
        {"out_channels": 2, **fields},
        lambda: nn.Conv2d(2, 2, (k, k2), s, padding, d),
        2,
        h,
        w,
    )


@settings(max_examples=300, deadline=None)
@given(
    h=Small,
    w=Small,
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    p=st.integers(0, 3),
    d=st.integers(1, 3),
    op=st.integers(0, 3),
    g=st.sampled_from([1, 2]),
)
def test_conv_transpose2d_agrees_with_torch(
    h: int, w: int, k: int, s: int, p: int, d: int, op: int, g: int
) -> None:
    fields = dict(kernel_size=k, stride=s, padding=p, dilation=d, output_padding=op, groups=g)
    agree(
        "conv_transpose2d",
        {"out_channels": 4, **fields},
        lambda: nn.ConvTranspose2d(4, 4, k, s, p, op, g, True, d),
        4,
        h,
        w,
    )


@settings(max_examples=400, deadline=None)
@given(
    h=Small,
    w=Small,
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    p=st.integers(0, 3),
    d=st.integers(1, 3),
    ceil=st.booleans(),
    is_max=st.booleans(),
)
def test_pools_agree_with_torch(
    h: int, w: int, k: int, s: int, p: int, d: int, ceil: bool, is_max: bool
) -> None:
    if is_max:
        fields = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        agree("max_pool2d", fields, lambda: nn.MaxPool2d(k, s, p, d, ceil_mode=ceil), 1, h, w)
    else:
        fields = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
        agree("avg_pool2d", fields, lambda: nn.AvgPool2d(k, s, p, ceil_mode=ceil), 1, h, w)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 30), k=st.integers(1, 5), s=st.integers(1, 3))
def test_transposed_conv_restores_the_size(n: int, k: int, s: int) -> None:
    """A conv followed by the matching transposed conv (with output_padding) restores n."""
    down = ours("conv2d", {"out_channels": 1, "kernel_size": k, "stride": s}, (1, n, n))
    if down is None:
        return
    lost = (n - k) % s  # rows the strided conv never reached
    up = (
        ours(
            "conv_transpose2d",
            {"out_channels": 1, "kernel_size": k, "stride": s, "output_padding": lost},
            down,
        )
        if lost < s
        else None
    )
    assert up == (1, n, n)


@settings(max_examples=100, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    f=st.sampled_from([0.5, 1.5, 2, 3, 2.25]),
    bilinear=st.booleans(),
)
def test_upsample_agrees_with_torch(h: int, w: int, f: float, bilinear: bool) -> None:
    mode = "bilinear" if bilinear else "nearest"
    agree(
        "upsample",
        {"scale_factor": f, "mode": mode},
        lambda: nn.Upsample(scale_factor=f, mode=mode),
        2,
        h,
        w,
    )
