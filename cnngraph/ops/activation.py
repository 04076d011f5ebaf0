"""Element-wise activations: shape in equals shape out, no parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from .base import Call, Op, Shape, call, torch_dim


class _Activation(Op):
    role = "act"
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
    kind, torch_name = "relu", "ReLU"
    examples = (({}, [(3, 4, 4)]), ({"inplace": True}, [(5,)]))


class ReLU6(_InplaceActivation):
    kind, torch_name = "relu6", "ReLU6"
    examples = (({}, [(3, 4, 4)]),)


class SiLU(_InplaceActivation):
    kind, torch_name = "silu", "SiLU"
    examples = (({}, [(3, 4, 4)]),)


class Hardswish(_InplaceActivation):
    kind, torch_name = "hardswish", "Hardswish"
    examples = (({}, [(3, 4, 4)]),)


class Hardsigmoid(_InplaceActivation):
    kind, torch_name = "hardsigmoid", "Hardsigmoid"
    examples = (({}, [(3, 1, 1)]),)


class LeakyReLU(_InplaceActivation):
    kind, torch_name = "leaky_relu", "LeakyReLU"
    examples = (({"negative_slope": 0.2}, [(3, 4, 4)]),)

    negative_slope: float = 0.01

    def _keywords(self) -> list[tuple[str, object, object]]:
        return [("negative_slope", self.negative_slope, 0.01), *super()._keywords()]


class Sigmoid(_Activation):
    kind, torch_name = "sigmoid", "Sigmoid"
    examples = (({}, [(3, 4, 4)]),)


class Tanh(_Activation):
    kind, torch_name = "tanh", "Tanh"
    examples = (({}, [(3, 4, 4)]),)


class GELU(_Activation):
    kind, torch_name = "gelu", "GELU"
    examples = (({}, [(3, 4, 4)]), ({"approximate": "tanh"}, [(7,)]))

    approximate: Literal["none", "tanh"] = "none"

    def _keywords(self) -> list[tuple[str, object, object]]:
        return [("approximate", self.approximate, "none")]


class Softmax(_Activation):
    kind, torch_name = "softmax", "Softmax"
    examples = (({}, [(10,)]), ({"dim": -1}, [(3, 4, 5)]))

    dim: int = 1  # counts the batch dimension, as in torch

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        torch_dim(self.kind, self.dim, len(shapes[0]))
        return shapes[0]

    def _keywords(self) -> list[tuple[str, object, object]]:
        return [("dim", self.dim, None)]
