"""Rearranging values without computing: chunk (a channel split), channel_shuffle, unflatten
and reshape. None has weights or a module of its own: each is one expression in forward."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from .. import symbolic as sym
from ..formulas import IDENTITY, SizeMap
from ..symbolic import Expr
from .base import (
    MAX_DIM,
    Fields,
    NonNegInt,
    Op,
    PosInt,
    Shape,
    ShapeCode,
    ShapeError,
    numel,
    spatial_axis,
    torch_dim,
)

# a reshape's target: sizes, one of which may be -1 (the rest of the values); generated code
# holds them as a tuple
Size = Annotated[int, Field(ge=-1, le=MAX_DIM)]
Sizes = Annotated[
    list[Size],
    Field(min_length=1),
    BeforeValidator(
        lambda v: list(v) if isinstance(v, tuple) else v, json_schema_input_type=list[int]
    ),
]


def _fits(kind: str, message: str, hint: str, field: str | None = None) -> ShapeError:
    return ShapeError("CG515", f"{kind}: {message}", hint, field)


class Chunk(Op):
    """Piece `index` of `chunks` equal pieces along `dim` (channels by default), as
    `torch.chunk(x, chunks, dim)[index]`: ShuffleNet's channel split takes pieces 0 and 1."""

    kind = "chunk"
    examples = (
        ({"chunks": 2, "index": 0}, [(6, 3, 3)]),
        ({"chunks": 3, "index": 2}, [(6, 3, 3)]),
        ({"chunks": 2, "index": 1, "dim": 2}, [(3, 4, 5)]),
        ({"chunks": 2, "index": 1}, [(8,)]),
    )

    chunks: PosInt
    index: NonNegInt
    dim: int = 1  # counts the batch dimension, as in torch

    @model_validator(mode="after")
    def _index_in_range(self) -> Chunk:
        if self.index >= self.chunks:
            raise ValueError(f"index {self.index} is past the last of {self.chunks} pieces")
        return self

    def size_map(self, axis: int) -> tuple[SizeMap, int] | None:
        return None if spatial_axis(self.dim) == axis else (IDENTITY, 1)

    def symmetric(self) -> bool:
        return spatial_axis(self.dim) is None

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        shape = shapes[0]
        axis = torch_dim(self.kind, self.dim, len(shape))
        if shape[axis] % self.chunks:
            raise _fits(
                self.kind,
                f"{shape[axis]} values along dim {self.dim} do not make {self.chunks} equal pieces",
                f"give a size divisible by {self.chunks}",
                "chunks",
            )
        return (*shape[:axis], shape[axis] // self.chunks, *shape[axis + 1 :])

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        dim, chunks = f["dim"], f["chunks"]
        shape = inputs[0]
        full = len(shape) + 1
        if not dim.constant or not -full <= dim.value < full or dim.value % full == 0:
            return None
        axis = dim.value % full - 1
        size = shape[axis]
        part = None if size is None else sym.floordiv(size, chunks)
        return (*shape[:axis], part, *shape[axis + 1 :])

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        return sym.const(f["dim"].constant and f["dim"].value == 1)

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        return sym.const(1) if f["dim"].constant and f["dim"].value == 1 else None

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        return f"chunk {self.index + 1}/{self.chunks}"

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        return f"torch.chunk({args[0]}, {self.chunks}, dim={self.dim})[{self.index}]"


class ChannelShuffle(Op):
    """Interleaves the channels of `groups` groups (Zhang et al. 2018), as nn.ChannelShuffle:
    channel g * n + i moves to i * groups + g."""

    kind = "channel_shuffle"
    keeps_spatial_size = True
    examples = (({"groups": 2}, [(6, 3, 3)]), ({"groups": 3}, [(6, 2, 2)]), ({"groups": 2}, [(4,)]))

    groups: PosInt

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        channels = shapes[0][0]
        if channels % self.groups:
            raise ShapeError(
                "CG502",
                f"channel_shuffle: {channels} channels do not split into {self.groups} groups",
                f"give a channel count divisible by {self.groups}",
                "groups",
            )
        return shapes[0]

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        return f"channel_shuffle g{self.groups}"

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        # (N, C, ...) as (N, g, C/g, ...), the two swapped, merged back (torch's functions:
        # Tensor.unflatten has no type annotations)
        grouped = f"torch.unflatten({args[0]}, 1, ({self.groups}, -1))"
        return f"torch.flatten(torch.transpose({grouped}, 1, 2), 1, 2)"


class Unflatten(Op):
    """Splits dim `dim` into `sizes`, as nn.Unflatten: a VAE decoder's features to C, H, W."""

    kind = "unflatten"
    mixes_axes = True
    examples = (
        ({"sizes": [4, 2, 3]}, [(24,)]),
        ({"dim": 2, "sizes": [2, 2]}, [(3, 4, 5)]),
        ({"sizes": [2, -1]}, [(6, 2)]),
    )

    dim: int = 1  # counts the batch dimension, as in torch
    sizes: Sizes

    @model_validator(mode="after")
    def _one_free_size(self) -> Unflatten:
        _check_sizes(self.sizes)
        return self

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        shape = shapes[0]
        axis = torch_dim(self.kind, self.dim, len(shape))
        sizes = _resolve(self.kind, self.sizes, shape[axis], f"dim {self.dim}")
        return (*shape[:axis], *sizes, *shape[axis + 1 :])

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        dim, sizes = f["dim"], f["sizes"]
        shape = inputs[0]
        full = len(shape) + 1
        if not (dim.constant and sizes.constant) or not -full <= dim.value < full:
            return None
        axis = dim.value % full - 1
        if axis < 0 or -1 in sizes.value:
            return None
        return (*shape[:axis], *(sym.const(s) for s in sizes.value), *shape[axis + 1 :])

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        return sym.const(False)

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        return None

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        return f"unflatten to {list(self.sizes)}"

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        return f"torch.unflatten({args[0]}, {self.dim}, {tuple(self.sizes)!r})"


class Reshape(Op):
    """The values of each sample in a new `shape` (batch omitted), as `x.reshape(N, *shape)`."""

    kind = "reshape"
    mixes_axes = True
    examples = (
        ({"shape": [6, 4]}, [(2, 3, 4)]),
        ({"shape": [-1]}, [(2, 3, 4)]),
        ({"shape": [3, -1, 2]}, [(24,)]),
    )

    shape: Sizes

    @model_validator(mode="after")
    def _one_free_size(self) -> Reshape:
        _check_sizes(self.shape)
        return self

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        return _resolve(self.kind, self.shape, numel(shapes[0]), f"a {list(shapes[0])} sample")

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        target = f["shape"]
        if not target.constant or -1 in target.value:
            return None
        return tuple(sym.const(s) for s in target.value)

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        return sym.const(False)

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        return None

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        return f"reshape to {list(self.shape)}"

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        sizes = ", ".join(str(s) for s in self.shape)
        return f"{args[0]}.reshape({args[0]}.shape[0], {sizes})"


def _check_sizes(sizes: Sequence[int]) -> None:
    if sizes.count(-1) > 1:
        raise ValueError("at most one size may be -1")
    if 0 in sizes:
        raise ValueError("sizes must be positive (or -1 for what remains)")


def _resolve(kind: str, sizes: Sequence[int], total: int, what: str) -> tuple[int, ...]:
    """`sizes` with its -1 worked out, when they hold exactly `total` values."""
    known = numel([s for s in sizes if s != -1])
    if -1 in sizes:
        if total % known:
            raise _fits(
                kind,
                f"{total} values of {what} do not divide by {known} for the -1",
                f"give sizes whose product divides {total}",
            )
        return tuple(total // known if s == -1 else s for s in sizes)
    if known != total:
        raise _fits(
            kind,
            f"{list(sizes)} holds {known} values, {what} has {total}",
            f"give sizes whose product is {total}, or -1 for one of them",
        )
    return tuple(sizes)
