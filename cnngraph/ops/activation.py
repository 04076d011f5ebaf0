"""Element-wise activations: shape in equals shape out, no parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from .base import Call, Op, Shape, call, torch_dim


class _Activation(Op):
    role = "act"
    keeps_spatial_size = True
    torch_name: ClassVar[str]

    def _keywords(self) -> list[tuple[str, object, object]]:
        return []

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(f"nn.{self.torch_name}", keywords=self._keywords())


class _InplaceActivation(_Activation):
    inplace: bool = False

    def _keywords(self) -> list[tuple[str, object, object]]:
        return [("inplace", self.inplace, False)]


class ReLU(_InplaceActivation):
    """max(0, x), as nn.ReLU."""

    kind, torch_name = "relu", "ReLU"
    examples = (({}, [(3, 4, 4)]), ({"inplace": True}, [(5,)]))


class ReLU6(_InplaceActivation):
    """min(max(0, x), 6), as nn.ReLU6 (MobileNet)."""

    kind, torch_name = "relu6", "ReLU6"
    examples = (({}, [(3, 4, 4)]),)


class SiLU(_InplaceActivation):
    """x * sigmoid(x) (swish), as nn.SiLU."""

    kind, torch_name = "silu", "SiLU"
    examples = (({}, [(3, 4, 4)]),)


class Hardswish(_InplaceActivation):
    """x * relu6(x + 3) / 6, as nn.Hardswish (MobileNetV3)."""

    kind, torch_name = "hardswish", "Hardswish"
    examples = (({}, [(3, 4, 4)]),)


class Hardsigmoid(_InplaceActivation):
    """relu6(x + 3) / 6, as nn.Hardsigmoid (MobileNetV3's gates)."""

    kind, torch_name = "hardsigmoid", "Hardsigmoid"
    examples = (({}, [(3, 1, 1)]),)


class LeakyReLU(_InplaceActivation):
    """x, or `negative_slope` * x below 0, as nn.LeakyReLU."""

    kind, torch_name = "leaky_relu", "LeakyReLU"
    examples = (({"negative_slope": 0.2}, [(3, 4, 4)]),)

    negative_slope: float = 0.01

    def _keywords(self) -> list[tuple[str, object, object]]:
        return [("negative_slope", self.negative_slope, 0.01), *super()._keywords()]


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), as nn.Sigmoid."""

    kind, torch_name = "sigmoid", "Sigmoid"
    examples = (({}, [(3, 4, 4)]),)


class Tanh(_Activation):
    """Hyperbolic tangent, as nn.Tanh."""

    kind, torch_name = "tanh", "Tanh"
    examples = (({}, [(3, 4, 4)]),)


class GELU(_Activation):
    """Gaussian error linear unit, as nn.GELU."""

    kind, torch_name = "gelu", "GELU"
    examples = (({}, [(3, 4, 4)]), ({"approximate": "tanh"}, [(7,)]))

    approximate: Literal["none", "tanh"] = "none"

    def _keywords(self) -> list[tuple[str, object, object]]:
        return [("approximate", self.approximate, "none")]


class Softmax(_Activation):
    """Softmax along `dim`, as nn.Softmax."""

    kind, torch_name = "softmax", "Softmax"
    examples = (({}, [(10,)]), ({"dim": -1}, [(3, 4, 5)]))

    dim: int = 1  # counts the batch dimension, as in torch

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        torch_dim(self.kind, self.dim, len(shapes[0]))
        return shapes[0]

    def _keywords(self) -> list[tuple[str, object, object]]:
        return [("dim", self.dim, None)]
