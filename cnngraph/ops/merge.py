"""Joining tensors: add (residual), concat (dense and inception joins), mul (gates)."""

from __future__ import annotations

from collections.abc import Sequence

from .. import symbolic as sym
from ..formulas import SizeMap
from ..symbolic import Expr
from .base import Fields, Op, Shape, ShapeCode, ShapeError, spatial_axis, torch_dim

# Python nests `a + b + c` one level per operand, and its parser stops near a thousand levels.
MAX_OPERATOR_CHAIN = 32


def _shapes_text(shapes: Sequence[Shape]) -> str:
    return ", ".join(str(list(s)) for s in shapes)


class Add(Op):
    """Element-wise sum of two or more tensors of equal shape (a residual join)."""

    role = "join"
    kind = "add"
    symbol = "+"
    arity = (2, None)
    examples = (({}, [(4, 3, 3), (4, 3, 3)]), ({}, [(5,), (5,), (5,)]))

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(
                "CG503",
                f"add needs equal shapes, got {_shapes_text(shapes)}",
                "project one side (a residual's `projection:`) or fix the strides",
            )
        return shapes[0]

    def joined_size_map(self, axis: int, maps: Sequence[SizeMap]) -> SizeMap | None:
        return maps[0] if all(m == maps[0] for m in maps) else None

    output_overwritable = True

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        if len(args) > MAX_OPERATOR_CHAIN:  # `a + b + ...` nests; sum() adds in the same order
            return f"sum([{', '.join(args[1:])}], {args[0]})"
        return " + ".join(args)

    def torch_forward_inplace(self, args: Sequence[str]) -> str | None:
        if len(args) > MAX_OPERATOR_CHAIN:
            return None
        return f"{args[0]} += {' + '.join(args[1:])}"

    def edge_kind(self, position: int) -> str | None:
        return "residual" if position > 0 else None  # the first input is the main path


class Concat(Op):
    """Concatenation of two or more tensors along `dim` (channels by default)."""

    role = "join"
    kind = "concat"
    symbol = "cat"
    arity = (2, None)
    examples = (({}, [(4, 3, 3), (2, 3, 3)]), ({"dim": 2}, [(4, 3, 3), (4, 5, 3)]))

    dim: int = 1  # counts the batch dimension, as in torch.cat

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ShapeError(
                "CG504", f"concat needs inputs of equal rank, got {_shapes_text(shapes)}"
            )
        axis = torch_dim(self.kind, self.dim, rank)
        rest = [s[:axis] + s[axis + 1 :] for s in shapes]
        if any(r != rest[0] for r in rest):
            raise ShapeError(
                "CG504",
                f"concat along dim {self.dim} needs the other dims equal, "
                f"got {_shapes_text(shapes)}",
                "the branches must keep the same spatial size: check strides, "
                "padding and the input size",
            )
        joined = sum(s[axis] for s in shapes)
        return (*shapes[0][:axis], joined, *shapes[0][axis + 1 :])

    def edge_kind(self, position: int) -> str | None:
        return "concat"

    def symmetric(self) -> bool:
        return spatial_axis(self.dim) is None

    def joined_size_map(self, axis: int, maps: Sequence[SizeMap]) -> SizeMap | None:
        if spatial_axis(self.dim) == axis:  # sizes add up along it
            return None
        return maps[0] if all(m == maps[0] for m in maps) else None

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        dim = f["dim"]
        rank = len(inputs[0])
        if not dim.constant or not -rank - 1 <= dim.value <= rank or dim.value % (rank + 1) == 0:
            return None
        axis = dim.value % (rank + 1) - 1
        total: Expr | None = sym.const(0)
        for shape in inputs:
            part = shape[axis] if len(shape) == rank else None
            total = None if total is None or part is None else sym.add(total, part)
        return (*inputs[0][:axis], total, *inputs[0][axis + 1 :])

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        return f"torch.cat([{', '.join(args)}], dim={self.dim})"


class Mul(Op):
    """Element-wise product with torch broadcasting: a squeeze-excitation gate scales channels."""

    kind = "mul"
    role = "join"
    symbol = "\u00d7"
    arity = (2, MAX_OPERATOR_CHAIN)  # a product of more is no gate; see Add for why a cap
    examples = (({}, [(4, 3, 3), (4, 1, 1)]), ({}, [(4, 1, 1), (4, 3, 3)]))

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        out = shapes[0]
        for shape in shapes[1:]:
            out = _broadcast(out, shape, shapes)
        return out

    def edge_kind(self, position: int) -> str | None:
        return "gate" if position > 0 else None  # the scale, not the gated tensor

    def joined_size_map(self, axis: int, maps: Sequence[SizeMap]) -> SizeMap | None:
        """Sizes that follow one map, beside sizes of 1 (broadcast: a gate)."""
        sized = {m for m in maps if m != SizeMap(0, 1)}
        return next(iter(sized)) if len(sized) == 1 else None

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        return " * ".join(args)


def _broadcast(a: Shape, b: Shape, all_shapes: Sequence[Shape]) -> Shape:
    rank = max(len(a), len(b))
    a1 = (1,) * (rank - len(a)) + a
    b1 = (1,) * (rank - len(b)) + b
    out = []
    for x, y in zip(a1, b1, strict=True):
        if x != y and 1 not in (x, y):
            raise ShapeError(
                "CG511",
                f"mul: shapes {_shapes_text(all_shapes)} do not broadcast",
                "a gate should have shape [C, 1, 1] for a [C, H, W] input",
            )
        out.append(max(x, y))
    return tuple(out)
