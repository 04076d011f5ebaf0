"""Reshaping and regularisation: flatten, linear, dropout, stochastic depth, identity, upsample."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from .. import symbolic as sym
from ..symbolic import Expr
from .base import (
    Call,
    Fields,
    Op,
    PosInt,
    PosPair,
    Probability,
    Shape,
    ShapeCode,
    ShapeError,
    call,
    check_positive,
    expect_rank,
    numel,
    torch_dim,
)


class Flatten(Op):
    """Flattens dims `start_dim`..`end_dim` into one, as nn.Flatten."""

    kind = "flatten"
    examples = (({}, [(4, 3, 2)]), ({"start_dim": 2}, [(4, 3, 2)]), ({"end_dim": 2}, [(2, 3, 4)]))

    start_dim: int = 1  # dims count the batch dimension, as in torch
    end_dim: int = -1

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        shape = shapes[0]
        start = torch_dim(self.kind, self.start_dim, len(shape), "start_dim")
        end = torch_dim(self.kind, self.end_dim, len(shape), "end_dim")
        if start > end:
            raise ShapeError(
                "CG512",
                f"flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim}",
                field="start_dim",
            )
        return (*shape[:start], numel(shape[start : end + 1]), *shape[end + 1 :])

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        shape = inputs[0]
        start_dim, end_dim = f["start_dim"], f["end_dim"]
        if not (start_dim.constant and end_dim.constant):
            return None
        full = len(shape) + 1  # dims count the batch
        start, end = start_dim.value % full - 1, end_dim.value % full - 1
        if not 0 <= start <= end:
            return None
        product: Expr | None = sym.const(1)
        for dim in shape[start : end + 1]:
            product = None if product is None or dim is None else sym.mul(product, dim)
        return (*shape[:start], product, *shape[end + 1 :])

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.Flatten", keywords=[("start_dim", self.start_dim, 1), ("end_dim", self.end_dim, -1)]
        )


class Linear(Op):
    """Fully connected layer on a flat tensor, as nn.Linear."""

    role = "linear"
    output_overwritable = True
    kind = "linear"
    examples = (({"out_features": 7}, [(12,)]), ({"out_features": 3, "bias": False}, [(5,)]))

    out_features: PosInt
    bias: bool = True
    in_features: PosInt | None = None

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        expect_rank(self.kind, shapes[0], 1, "add {op: flatten} before it")
        if self.in_features is not None and self.in_features != shapes[0][0]:
            raise ShapeError(
                "CG507",
                f"linear: in_features is declared {self.in_features} but "
                f"the input has {shapes[0][0]} features",
                "in_features is inferred; remove it or fix it",
                "in_features",
            )
        return (self.out_features,)

    def count_params(self, shapes: Sequence[Shape], out: Shape) -> int:
        return shapes[0][0] * self.out_features + (self.out_features if self.bias else 0)

    def count_macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        return shapes[0][0] * self.out_features

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        return (f["out_features"],)

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.Linear",
            [(shapes[0][0], None), (self.out_features, "out_features")],
            [("bias", self.bias, True)],
        )


class Dropout(Op):
    """Zeroes elements with probability `p` in training, as nn.Dropout."""

    role = "regularize"
    kind = "dropout"
    keeps_spatial_size = True
    examples = (({"p": 0.3}, [(3, 4, 4)]),)

    p: Probability = 0.5
    inplace: bool = False

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        return f"dropout {self.p:g}"

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call("nn.Dropout", keywords=[("p", self.p, 0.5), ("inplace", self.inplace, False)])


class StochasticDepth(Op):
    """Drop path: in training, zero a residual branch per sample (mode row) or per batch."""

    kind = "stochastic_depth"
    keeps_spatial_size = True
    role = "regularize"
    torch_helper = "StochasticDepth"
    examples = (({"p": 0.2}, [(3, 4, 4)]), ({"p": 0.1, "mode": "batch"}, [(6,)]))

    p: Probability
    mode: Literal["row", "batch"] = "row"

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        return f"stochastic_depth {self.p:g}"

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        # A small class of the generated module's own: the source imports nothing but torch.
        return call("StochasticDepth", [(self.p, "p"), (self.mode, "mode")])


class Identity(Op):
    """Passes its input through, as nn.Identity."""

    kind = "identity"
    keeps_spatial_size = True
    examples = (({}, [(3, 4, 4)]),)

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call("nn.Identity")


class Upsample(Op):
    """Resizes by `size` or `scale_factor`, as nn.Upsample."""

    kind = "upsample"
    examples = (
        ({"scale_factor": 2}, [(3, 4, 5)]),
        ({"size": [7, 9], "mode": "bilinear", "align_corners": True}, [(2, 3, 3)]),
        ({"scale_factor": 1.5, "mode": "bilinear"}, [(2, 5, 7)]),
    )

    size: PosPair | None = None
    scale_factor: float | list[float] | None = Field(default=None, description="> 0")
    mode: Literal["nearest", "nearest-exact", "bilinear", "bicubic"] = "nearest"
    align_corners: bool | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Upsample:
        if (self.size is None) == (self.scale_factor is None):
            raise ValueError("give exactly one of size or scale_factor")
        if self.align_corners is not None and self.mode not in ("bilinear", "bicubic"):
            raise ValueError("align_corners applies only to bilinear and bicubic modes")
        factors = self._factors()
        finite = factors is not None and all(math.isfinite(f) for f in factors)
        if factors is not None and (len(factors) != 2 or not finite or min(factors) <= 0):
            raise ValueError("scale_factor must be positive and finite: one number or a pair")
        return self

    def _factors(self) -> tuple[float, ...] | None:
        if self.scale_factor is None:
            return None
        if isinstance(self.scale_factor, list):
            return tuple(self.scale_factor)
        return (self.scale_factor, self.scale_factor)

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        expect_rank(self.kind, shapes[0], 3)
        c, h, w = shapes[0]
        if self.size is not None:
            return (c, *self.size)
        factors = self._factors() or (1.0, 1.0)  # the validator guarantees a factor here
        # torch computes floor(float(size) * scale) in double precision; so does Python.
        out = (c, math.floor(h * factors[0]), math.floor(w * factors[1]))
        return check_positive(
            self.kind, out, "the scale factor shrinks it to nothing", "scale_factor"
        )

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        c, *spatial = inputs[0]
        size, factor = f["size"], f["scale_factor"]
        if size.constant and size.value is not None:
            return (c, *(sym.axis(size, i) for i in (0, 1)))
        out: list[Expr | None] = [c]
        for i, n in enumerate(spatial):
            k = sym.axis(factor, i)
            exact = n is not None and n.constant and k.constant
            out.append(sym.const(math.floor(n.value * k.value)) if exact and n else None)
        return tuple(out)

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        return sym.const(False)

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        return None

    def symmetric(self) -> bool:
        factors = self._factors()
        return super().symmetric() and (factors is None or factors[0] == factors[1])

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        target = (
            f"x{self.scale_factor:g}"
            if isinstance(self.scale_factor, (int, float))
            else (f"to {self.size}" if self.size else f"x{self.scale_factor}")
        )
        return f"upsample {self.mode} {target}"

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.Upsample",
            keywords=[
                ("size", self.size, None),
                ("scale_factor", self.scale_factor, None),
                ("mode", self.mode, "nearest"),
                ("align_corners", self.align_corners, None),
            ],
        )
