"""Pooling: max_pool2d, avg_pool2d and the adaptive pools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BeforeValidator, Field

from .. import symbolic as sym
from ..formulas import IDENTITY, SizeMap, pool_out
from ..symbolic import Expr
from .base import (
    _NO_DEFAULT as _NONE,
)
from .base import (
    Call,
    Fields,
    NonNegPair,
    Op,
    PosInt,
    PosPair,
    Shape,
    ShapeCode,
    ShapeError,
    call,
    check_positive,
    expect_rank,
    fmt_kernel,
    to_pair,
)
from .conv import strided_size, window_keeps


class _Pool(Op):
    role = "pool"
    kernel_size: PosPair
    stride: PosPair | None = None  # torch's default: the kernel size
    padding: NonNegPair = (0, 0)
    ceil_mode: bool = False

    def _dilation(self) -> tuple[int, int]:
        return (1, 1)

    @classmethod
    def _window(cls, f: Fields, index: int) -> tuple[Expr, Expr, Expr, Expr]:
        stride = f["stride"]
        if stride.constant and stride.value is None:
            stride = f["kernel_size"]
        dilation = f["dilation"] if "dilation" in cls.model_fields else sym.const(1)
        return (
            sym.axis(f["kernel_size"], index),
            sym.axis(stride, index),
            sym.axis(f["padding"], index),
            sym.axis(dilation, index),
        )

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        if len(inputs[0]) != 3:
            return None
        out: list[Expr | None] = [inputs[0][0]]
        ceil = f["ceil_mode"]
        for index, n in enumerate(inputs[0][1:]):
            k, s, p, d = cls._window(f, index)
            parts = (n, k, s, p, d, ceil)
            if all(x is not None and x.constant for x in parts):
                values = [x.value for x in parts if x is not None]
                out.append(sym.const(pool_out(*values)))
            elif n is not None and ceil.constant and not ceil.value and f["stride"].constant:
                # (a stride from a param may be null: the kernel's, known only when built)
                out.append(strided_size(n, k, s, p, d))  # the conv's floor rule
            else:
                out.append(None)  # ceil_mode's rule is not worth writing out as code
        return tuple(out)

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        return sym.all_of(window_keeps(*cls._window(f, axis)) for axis in (0, 1))

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        _, s, _, _ = cls._window(f, 0)
        return s

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        expect_rank(self.kind, shapes[0], 3)
        c, h, w = shapes[0]
        stride = self.stride or self.kernel_size
        out = [c]
        for n, k, s, p, d in zip(
            (h, w), self.kernel_size, stride, self.padding, self._dilation(), strict=True
        ):
            if p > k // 2:  # torch's rule, for max pooling even when dilated
                raise ShapeError(
                    "CG509",
                    f"{self.kind}: padding {p} is more than half the kernel {k}",
                    "torch requires padding <= kernel_size / 2",
                    "padding",
                )
            out.append(pool_out(n, k, s, p, d, self.ceil_mode))
        return check_positive(
            self.kind,
            tuple(out),
            f"input {h}x{w} is smaller than the window {fmt_kernel(self.kernel_size)}",
            "kernel_size",
        )

    def size_map(self, axis: int) -> tuple[SizeMap, int] | None:
        k, p, d = self.kernel_size[axis], self.padding[axis], self._dilation()[axis]
        s = (self.stride or self.kernel_size)[axis]
        if not self.ceil_mode:
            size = SizeMap.window(k, s, 2 * p, d)
        elif p + s - 2 < d * (k - 1):
            # ceil_mode drops a last window starting past the input and left padding: only
            # for sizes where ceil((n + 2p - d(k-1) - 1) / s) * s >= n + p, and none are
            size = SizeMap.window(k, s, 2 * p + s - 1, d)
        else:
            return None
        least = size.least(1)
        return None if least is None else (size, least)

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        stride = self.stride or self.kernel_size
        text = f"{self.kind} {fmt_kernel(self.kernel_size)}"
        if stride != (1, 1):
            text += f"/{stride[0]}" if stride[0] == stride[1] else f"/{fmt_kernel(stride)}"
        return text + (" ceil" if self.ceil_mode else "")


class MaxPool2d(_Pool):
    """Max pooling over windows, as nn.MaxPool2d (stride defaults to the window)."""

    kind = "max_pool2d"
    examples = (
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, [(3, 8, 9)]),
        ({"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}, [(2, 11, 10)]),
    )

    dilation: PosPair = (1, 1)

    def _dilation(self) -> tuple[int, int]:
        return self.dilation

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.MaxPool2d",
            keywords=[
                ("kernel_size", self.kernel_size, _NONE),
                ("stride", self.stride, None),
                ("padding", self.padding, (0, 0)),
                ("dilation", self.dilation, (1, 1)),
                ("ceil_mode", self.ceil_mode, False),
            ],
        )


class AvgPool2d(_Pool):
    """Average pooling over windows, as nn.AvgPool2d (stride defaults to the window)."""

    kind = "avg_pool2d"
    examples = (
        ({"kernel_size": 2, "stride": 2, "ceil_mode": True}, [(3, 7, 7)]),
        ({"kernel_size": [3, 2], "padding": 1, "count_include_pad": False}, [(2, 6, 5)]),
    )

    count_include_pad: bool = True
    divisor_override: PosInt | None = None

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.AvgPool2d",
            keywords=[
                ("kernel_size", self.kernel_size, _NONE),
                ("stride", self.stride, None),
                ("padding", self.padding, (0, 0)),
                ("ceil_mode", self.ceil_mode, False),
                ("count_include_pad", self.count_include_pad, True),
                ("divisor_override", self.divisor_override, None),
            ],
        )


_OutputSize = Annotated[
    tuple[PosInt | None, PosInt | None],
    BeforeValidator(to_pair, json_schema_input_type=int | list[int | None]),
    Field(description="output H and W; null keeps the input's size"),
]


class _AdaptivePool(Op):
    role = "pool"
    output_size: _OutputSize

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        expect_rank(self.kind, shapes[0], 3)
        c, h, w = shapes[0]
        oh, ow = self.output_size
        return (c, h if oh is None else oh, w if ow is None else ow)

    def size_map(self, axis: int) -> tuple[SizeMap, int]:
        size = self.output_size[axis]
        return (IDENTITY if size is None else SizeMap(0, size)), 1

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        oh, ow = self.output_size
        return f"{self.kind} {'*' if oh is None else oh}x{'*' if ow is None else ow}"

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        if len(inputs[0]) != 3:
            return None
        size = f["output_size"]
        if not size.constant:
            return (inputs[0][0], None, None)
        pair = size.value if isinstance(size.value, tuple) else (size.value, size.value)
        return (
            inputs[0][0],
            *(n if m is None else sym.const(m) for n, m in zip(inputs[0][1:], pair, strict=True)),
        )

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        return sym.const(False)

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        return None

    def _size(self) -> int | tuple[int | None, int | None]:
        oh, ow = self.output_size
        return oh if oh == ow and oh is not None else (oh, ow)


class AdaptiveAvgPool2d(_AdaptivePool):
    """Average pooling to a fixed output size, as nn.AdaptiveAvgPool2d."""

    kind = "adaptive_avg_pool2d"
    examples = (({"output_size": 1}, [(5, 7, 7)]), ({"output_size": [3, None]}, [(2, 9, 4)]))

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call("nn.AdaptiveAvgPool2d", [(self._size(), "output_size")])


class AdaptiveMaxPool2d(_AdaptivePool):
    """Max pooling to a fixed output size, as nn.AdaptiveMaxPool2d."""

    kind = "adaptive_max_pool2d"
    examples = (({"output_size": [2, 3]}, [(4, 6, 7)]),)

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call("nn.AdaptiveMaxPool2d", [(self._size(), "output_size")])
