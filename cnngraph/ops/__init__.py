"""The op registry: every op kind a spec may name, one class each."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import did_you_mean
from .activation import (
    GELU,
    Hardsigmoid,
    Hardswish,
    LeakyReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from .base import MAX_DIM, Op, Shape, ShapeError
from .conv import Conv2d, ConvTranspose2d, Projection
from .merge import Add, Concat, Mul
from .norm import BatchNorm2d, GroupNorm, LayerNorm, LocalResponseNorm
from .pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .reshape import ChannelShuffle, Chunk, Reshape, Unflatten
from .tensor import Dropout, Flatten, Identity, Linear, StochasticDepth, Upsample

OPS: dict[str, type[Op]] = {
    cls.kind: cls
    for cls in (
        Conv2d,
        ConvTranspose2d,
        Projection,
        MaxPool2d,
        AvgPool2d,
        AdaptiveAvgPool2d,
        AdaptiveMaxPool2d,
        BatchNorm2d,
        LayerNorm,
        GroupNorm,
        LocalResponseNorm,
        ReLU,
        ReLU6,
        LeakyReLU,
        Sigmoid,
        Tanh,
        SiLU,
        Hardswish,
        Hardsigmoid,
        GELU,
        Softmax,
        Dropout,
        StochasticDepth,
        Flatten,
        Unflatten,
        Reshape,
        Chunk,
        ChannelShuffle,
        Linear,
        Identity,
        Upsample,
        Add,
        Concat,
        Mul,
    )
}

__all__ = ["MAX_DIM", "OPS", "Op", "Shape", "ShapeError"]


def unknown_op_hint(name: str, blocks: Iterable[str]) -> str:
    """What to write instead of an op name that is not one."""
    if name in blocks:
        return f"'{name}' is a block: write `block: {name}`"
    return did_you_mean(name, OPS) or "see `cnngraph schema` for the list of ops"
