"""Normalisation: batch_norm2d, layer_norm, group_norm, local_response_norm."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from .base import Call, Op, PosInt, Shape, ShapeError, call, expect_rank, numel


def _check_declared(kind: str, field: str, declared: int | None, actual: int) -> None:
    if declared is not None and declared != actual:
        raise ShapeError(
            "CG507",
            f"{kind}: {field} is declared {declared} but the input has {actual} channels",
            f"{field} is inferred; remove it or fix it",
            field,
        )


class BatchNorm2d(Op):
    """Batch normalization over channels, as nn.BatchNorm2d."""

    role = "norm"
    output_overwritable = True
    kind = "batch_norm2d"
    keeps_spatial_size = True
    examples = (({}, [(6, 4, 5)]), ({"eps": 0.001, "momentum": 0.01, "affine": False}, [(3, 2, 2)]))

    eps: float = Field(default=1e-5, gt=0)
    momentum: float | None = Field(default=0.1, ge=0, le=1)
    affine: bool = True
    track_running_stats: bool = True
    num_features: PosInt | None = None

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        expect_rank(self.kind, shapes[0], 3, "use layer_norm or batch norm before flatten")
        _check_declared(self.kind, "num_features", self.num_features, shapes[0][0])
        return shapes[0]

    def count_params(self, shapes: Sequence[Shape], out: Shape) -> int:
        return 2 * shapes[0][0] if self.affine else 0

    def has_weights(self) -> bool:
        return self.affine

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.BatchNorm2d",
            [(shapes[0][0], None)],
            [
                ("eps", self.eps, 1e-5),
                ("momentum", self.momentum, 0.1),
                ("affine", self.affine, True),
                ("track_running_stats", self.track_running_stats, True),
            ],
        )


class LayerNorm(Op):
    """Layer normalization over the trailing dims, as nn.LayerNorm."""

    role = "norm"
    kind = "layer_norm"
    examples = (
        ({}, [(4, 3, 3)]),
        ({"normalized_shape": [6]}, [(6,)]),
        ({"normalized_shape": [5], "bias": False, "eps": 1e-6}, [(2, 3, 5)]),
    )

    normalized_shape: list[PosInt] | None = Field(
        default=None,
        min_length=1,
        description="trailing dims to normalise; default: the whole sample",
    )
    eps: float = Field(default=1e-5, gt=0)
    elementwise_affine: bool = True
    bias: bool = True

    def _normalized(self, shape: Shape) -> tuple[int, ...]:
        return shape if self.normalized_shape is None else tuple(self.normalized_shape)

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        shape = shapes[0]
        wanted = self._normalized(shape)
        if len(wanted) > len(shape) or shape[len(shape) - len(wanted) :] != wanted:
            raise ShapeError(
                "CG507",
                f"layer_norm: normalized_shape {list(wanted)} does not "
                f"match the trailing dims of the input {list(shape)}",
                field="normalized_shape",
            )
        return shape

    def has_weights(self) -> bool:
        return self.elementwise_affine

    def count_params(self, shapes: Sequence[Shape], out: Shape) -> int:
        if not self.elementwise_affine:
            return 0
        size = numel(self._normalized(shapes[0]))
        return size * (2 if self.bias else 1)

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.LayerNorm",
            [(list(self._normalized(shapes[0])), None)],
            [
                ("eps", self.eps, 1e-5),
                ("elementwise_affine", self.elementwise_affine, True),
                ("bias", self.bias, True),
            ],
        )


class GroupNorm(Op):
    """Group normalization: channels in `num_groups` groups, as nn.GroupNorm."""

    role = "norm"
    kind = "group_norm"
    keeps_spatial_size = True
    examples = (({"num_groups": 2}, [(6, 3, 3)]), ({"num_groups": 1, "affine": False}, [(4, 2, 2)]))

    num_groups: PosInt
    eps: float = Field(default=1e-5, gt=0)
    affine: bool = True
    num_channels: PosInt | None = None

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        c = shapes[0][0]
        _check_declared(self.kind, "num_channels", self.num_channels, c)
        if c % self.num_groups:
            raise ShapeError(
                "CG502",
                f"group_norm: {c} channels are not divisible by num_groups={self.num_groups}",
                field="num_groups",
            )
        return shapes[0]

    def count_params(self, shapes: Sequence[Shape], out: Shape) -> int:
        return 2 * shapes[0][0] if self.affine else 0

    def has_weights(self) -> bool:
        return self.affine

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.GroupNorm",
            [(self.num_groups, "num_groups"), (shapes[0][0], None)],
            [("eps", self.eps, 1e-5), ("affine", self.affine, True)],
        )


class LocalResponseNorm(Op):
    """Cross-channel normalisation of the original AlexNet."""

    kind = "local_response_norm"
    keeps_spatial_size = True
    role = "norm"
    examples = (({"size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2.0}, [(8, 4, 4)]),)

    size: PosInt
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        if len(shapes[0]) < 2:
            raise ShapeError(
                "CG506",
                f"local_response_norm needs channels and at least one "
                f"spatial dim, got {list(shapes[0])}",
            )
        return shapes[0]

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.LocalResponseNorm",
            [(self.size, "size")],
            [("alpha", self.alpha, 1e-4), ("beta", self.beta, 0.75), ("k", self.k, 1.0)],
        )
