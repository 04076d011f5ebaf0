"""Convolutions: conv2d, conv_transpose2d, and the residual shortcut projection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from .. import symbolic as sym
from ..formulas import (
    SizeMap,
    conv_out,
    conv_transpose_out,
    projection_stride,
    same_padding,
)
from ..symbolic import Expr
from .base import (
    _NO_DEFAULT as _NONE,
)
from .base import (
    Arg,
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
    numel,
)


def _check_channels(kind: str, c_in: int, declared: int | None, out: int, groups: int) -> None:
    if declared is not None and declared != c_in:
        raise ShapeError(
            "CG507",
            f"{kind}: in_channels is declared {declared} but the input has {c_in} channels",
            "in_channels is inferred; remove it or fix it",
            "in_channels",
        )
    for what, count in (("input channels", c_in), ("out_channels", out)):
        if count % groups:
            raise ShapeError(
                "CG502",
                f"{kind}: {what} ({count}) must be divisible by groups ({groups})",
                "choose groups that divides both channel counts",
                "groups",
            )


_ONE, _TWO = sym.const(1), sym.const(2)


def strided_size(n: Expr, k: Expr, s: Expr, p: Expr, d: Expr) -> Expr:
    """floor((n + 2p - d(k-1) - 1) / s) + 1, as code."""
    reach = sym.add(sym.mul(d, sym.sub(k, _ONE)), _ONE)
    return sym.add(sym.floordiv(sym.sub(sym.add(n, sym.mul(_TWO, p)), reach), s), _ONE)


def window_keeps(k: Expr, s: Expr, p: Expr, d: Expr) -> Expr:
    """A window keeps every size when it moves by 1 and its padding makes up its reach."""
    return sym.all_of([sym.eq(s, _ONE), sym.eq(sym.mul(_TWO, p), sym.mul(d, sym.sub(k, _ONE)))])


def one_stride(stride: Expr) -> Expr:
    """A stride field as one value where both axes agree."""
    if stride.constant and isinstance(stride.value, tuple) and stride.value[0] == stride.value[1]:
        return sym.const(stride.value[0])
    return stride


class _Conv(Op):
    """What convolutions and transposed convolutions share."""

    role = "conv"
    output_overwritable = True

    out_channels: PosInt
    kernel_size: PosPair
    stride: PosPair = (1, 1)
    dilation: PosPair = (1, 1)
    groups: PosInt = 1
    bias: bool = True
    in_channels: PosInt | None = None

    def count_params(self, shapes: Sequence[Shape], out: Shape) -> int:
        # in x out / groups weights per kernel position, whichever way round torch stores them
        weights = shapes[0][0] * (self.out_channels // self.groups) * numel(self.kernel_size)
        return weights + (self.out_channels if self.bias else 0)

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        text = f"{self.kind} {fmt_kernel(self.kernel_size)}"
        if self.stride != (1, 1):
            s = self.stride
            text += f"/{s[0]}" if s[0] == s[1] else f"/{fmt_kernel(s)}"
        if self.groups > 1:
            text += f" g{self.groups}"
        if self.dilation != (1, 1):
            d = self.dilation
            text += f" d{d[0]}" if d[0] == d[1] else f" d{fmt_kernel(d)}"
        return text


class Conv2d(_Conv):
    """2D convolution, as nn.Conv2d: out_channels, kernel_size, stride, padding, groups."""

    kind = "conv2d"
    examples = (
        ({"out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1}, [(4, 9, 10)]),
        (
            {
                "out_channels": 6,
                "kernel_size": [3, 5],
                "padding": "same",
                "dilation": 2,
                "groups": 3,
                "bias": False,
            },
            [(3, 7, 8)],
        ),
        (
            {"out_channels": 4, "kernel_size": 3, "padding": 2, "padding_mode": "reflect"},
            [(2, 5, 5)],
        ),
    )

    padding: NonNegPair | Literal["same", "valid"] = (0, 0)
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    def pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(left, right) padding per spatial dimension."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":
            return (
                same_padding(self.kernel_size[0], self.dilation[0]),
                same_padding(self.kernel_size[1], self.dilation[1]),
            )
        ph, pw = self.padding
        return (ph, ph), (pw, pw)

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        expect_rank(self.kind, shapes[0], 3)
        c, h, w = shapes[0]
        _check_channels(self.kind, c, self.in_channels, self.out_channels, self.groups)
        if self.padding == "same" and self.stride != (1, 1):
            raise ShapeError(
                "CG514",
                "conv2d: padding='same' needs stride 1, as in torch",
                "give the padding as numbers for a strided convolution",
                "padding",
            )
        out = [self.out_channels]
        for n, k, s, d, (left, right) in zip(
            (h, w), self.kernel_size, self.stride, self.dilation, self.pads(), strict=True
        ):
            if self.padding_mode != "zeros" and max(left, right) >= n + (
                self.padding_mode == "circular"
            ):
                raise ShapeError(
                    "CG509",
                    f"conv2d: padding {max(left, right)} is too large for "
                    f"padding_mode='{self.padding_mode}' on a size-{n} input",
                    field="padding",
                )
            if n + left + right < d * (k - 1) + 1:
                raise ShapeError(
                    "CG501",
                    f"conv2d: kernel {fmt_kernel(self.kernel_size)} "
                    f"(dilation {d}) is larger than the padded input "
                    f"{h + sum(self.pads()[0])}x{w + sum(self.pads()[1])}",
                    "use a larger input, more padding, or a smaller kernel",
                    "kernel_size",
                )
            out.append(conv_out(n, k, s, left + right, d))
        return check_positive(self.kind, tuple(out), "input too small", "kernel_size")

    def count_macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        return numel(out) * (shapes[0][0] // self.groups) * numel(self.kernel_size)

    def size_map(self, axis: int) -> tuple[SizeMap, int]:
        # the least size: the padded input holds the dilated kernel (infer's rules)
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        left, right = self.pads()[axis]
        least = d * (k - 1) + 1 - left - right
        if self.padding_mode != "zeros":  # reflect and replicate: padding < n; circular <=
            least = max(least, max(left, right) + (self.padding_mode != "circular"))
        return SizeMap.window(k, s, left + right, d), max(1, least)

    @classmethod
    def _padding(cls, f: Fields, index: int) -> Expr | None:
        """The padding on one side along an axis, or None for 'same'."""
        padding = f["padding"]
        if padding.constant and padding.value == "same":
            return None
        if padding.constant and padding.value == "valid":
            return sym.const(0)
        return sym.axis(padding, index)

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        if len(inputs[0]) != 3:
            return None
        out: list[Expr | None] = [f["out_channels"]]
        for index, n in enumerate(inputs[0][1:]):
            p = cls._padding(f, index)
            if n is None or p is None:
                out.append(n)
                continue
            k, s, d = (sym.axis(f[name], index) for name in ("kernel_size", "stride", "dilation"))
            out.append(strided_size(n, k, s, p, d))
        return tuple(out)

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        rules = []
        for index in (0, 1):
            p = cls._padding(f, index)
            if p is not None:
                k, s, d = (sym.axis(f[n], index) for n in ("kernel_size", "stride", "dilation"))
                rules.append(window_keeps(k, s, p, d))
        return sym.all_of(rules)

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        return one_stride(f["stride"])

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.Conv2d",
            [(shapes[0][0], None), (self.out_channels, "out_channels")],
            [
                ("kernel_size", self.kernel_size, _NONE),
                ("stride", self.stride, (1, 1)),
                ("padding", self.padding, (0, 0)),
                ("dilation", self.dilation, (1, 1)),
                ("groups", self.groups, 1),
                ("bias", self.bias, True),
                ("padding_mode", self.padding_mode, "zeros"),
            ],
        )


class ConvTranspose2d(_Conv):
    """2D transposed convolution (upsampling), as nn.ConvTranspose2d."""

    kind = "conv_transpose2d"
    examples = (
        ({"out_channels": 4, "kernel_size": 4, "stride": 2, "padding": 1}, [(8, 5, 6)]),
        (
            {
                "out_channels": 6,
                "kernel_size": 3,
                "stride": [2, 3],
                "padding": 1,
                "output_padding": [1, 2],
                "groups": 2,
                "dilation": 1,
                "bias": False,
            },
            [(4, 3, 4)],
        ),
    )

    padding: NonNegPair = (0, 0)
    output_padding: NonNegPair = (0, 0)

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        expect_rank(self.kind, shapes[0], 3)
        c, h, w = shapes[0]
        _check_channels(self.kind, c, self.in_channels, self.out_channels, self.groups)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= s and op >= d:
                raise ShapeError(
                    "CG510",
                    f"conv_transpose2d: output_padding {op} must be "
                    f"smaller than stride ({s}) or dilation ({d})",
                    field="output_padding",
                )
        out = (
            self.out_channels,
            *tuple(
                conv_transpose_out(n, k, s, p, d, op)
                for n, k, s, p, d, op in zip(
                    (h, w),
                    self.kernel_size,
                    self.stride,
                    self.padding,
                    self.dilation,
                    self.output_padding,
                    strict=True,
                )
            ),
        )
        return check_positive(
            self.kind, out, "padding removes more than the kernel adds", "padding"
        )

    def size_map(self, axis: int) -> tuple[SizeMap, int] | None:
        s, d = self.stride[axis], self.dilation[axis]
        added = d * (self.kernel_size[axis] - 1) + self.output_padding[axis] + 1
        size = SizeMap(s, added - s - 2 * self.padding[axis])  # (n-1)s - 2p + d(k-1) + op + 1
        least = size.least(1)
        return None if least is None else (size, least)

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        if len(inputs[0]) != 3:
            return None
        out: list[Expr | None] = [f["out_channels"]]
        for index, n in enumerate(inputs[0][1:]):
            k, s, p, d, extra = (
                sym.axis(f[name], index)
                for name in ("kernel_size", "stride", "padding", "dilation", "output_padding")
            )
            if n is None:
                out.append(None)
                continue
            # (n - 1)s - 2p + d(k - 1) + output_padding + 1
            grown = sym.add(sym.mul(sym.sub(n, _ONE), s), sym.mul(d, sym.sub(k, _ONE)))
            out.append(sym.add(sym.sub(grown, sym.mul(_TWO, p)), sym.add(extra, _ONE)))
        return tuple(out)

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        return sym.const(False)  # said for every size only where it is sure

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        return None  # it upsamples: no strided 1x1 convolution follows it

    def count_macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        # Every input pixel scatters a full kernel into (out_channels / groups) channels.
        c, h, w = shapes[0]
        return c * h * w * (self.out_channels // self.groups) * numel(self.kernel_size)

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        return call(
            "nn.ConvTranspose2d",
            [(shapes[0][0], None), (self.out_channels, "out_channels")],
            [
                ("kernel_size", self.kernel_size, _NONE),
                ("stride", self.stride, (1, 1)),
                ("padding", self.padding, (0, 0)),
                ("output_padding", self.output_padding, (0, 0)),
                ("groups", self.groups, 1),
                ("bias", self.bias, True),
                ("dilation", self.dilation, (1, 1)),
            ],
        )


class Projection(Op):
    """A residual shortcut: identity when the input already has the target's shape, otherwise a
    strided 1x1 conv (plus batch norm) onto it. Inputs: the tensor, then the target to match."""

    kind = "projection"
    role = "conv"
    arity = (2, 2)
    runtime_inputs = 1  # the target is read for its shape
    examples = (
        ({}, [(4, 8, 8), (8, 4, 4)]),
        ({"norm": False, "bias": True}, [(4, 7, 7), (6, 4, 4)]),
        ({}, [(4, 5, 5), (4, 5, 5)]),
    )

    stride: PosPair | None = None
    norm: bool = True
    bias: bool = False
    eps: float = Field(default=1e-5, gt=0)
    momentum: float | None = 0.1

    def _stride(self, source: Shape, target: Shape) -> tuple[int, int]:
        if self.stride is not None:
            return self.stride
        found = [projection_stride(n, m) for n, m in zip(source[1:], target[1:], strict=True)]
        if found[0] is None or found[1] is None:
            raise ShapeError(
                "CG513",
                f"projection: no strided 1x1 conv maps {list(source)} to {list(target)}",
                "the shortcut must downsample by an integer "
                "stride; give the shortcut as explicit layers instead",
            )
        return found[0], found[1]

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        source, target = shapes
        expect_rank(self.kind, source, 3)
        expect_rank(self.kind, target, 3)
        if source == target and not self.active(shapes):
            return target
        stride = self._stride(source, target)
        got = tuple(conv_out(n, 1, s, 0, 1) for n, s in zip(source[1:], stride, strict=True))
        if got != target[1:]:
            raise ShapeError(
                "CG513",
                f"projection: stride {list(stride)} maps {list(source)} "
                f"to {[target[0], *got]}, not {list(target)}",
                field="stride",
            )
        return target

    def joined_size_map(self, axis: int, maps: Sequence[SizeMap]) -> SizeMap | None:
        """The target's map, where a 1x1 conv of one stride maps the source onto the target
        at every size (a stride that depends on the size is not derived)."""
        source, target = maps
        if source == target and self.stride is None:
            return target  # the identity along this axis, whatever the size
        strides = range(1, 65) if self.stride is None else (self.stride[axis],)
        for stride in strides:
            if source.then(SizeMap.window(1, stride, 0, 1)) == target:
                return target
        return None

    def active(self, shapes: Sequence[Shape]) -> bool:
        """A conv where the shapes differ, or where a stride is set (see `infer`)."""
        return shapes[0] != shapes[1] or self.stride not in (None, (1, 1))

    def is_identity(self, shapes: Sequence[Shape]) -> bool:
        return not self.active(shapes)

    def edge_kind(self, position: int) -> str | None:
        return "residual"  # the shortcut path

    def count_params(self, shapes: Sequence[Shape], out: Shape) -> int:
        if not self.active(shapes):
            return 0
        c_in, c_out = shapes[0][0], out[0]
        return c_in * c_out + (c_out if self.bias else 0) + (2 * c_out if self.norm else 0)

    def count_macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        return numel(out) * shapes[0][0] if self.active(shapes) else 0

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        if len(shapes) == 2 and not self.active(shapes):
            return "projection (identity)"
        stride = self._stride(shapes[0], shapes[1]) if len(shapes) == 2 else None
        return f"projection 1x1/{stride[0]}" if stride and stride[0] == stride[1] else "projection"

    def torch_call(self, shapes: Sequence[Shape]) -> Call:
        """The conv (+ norm) even where the projection is the identity, so that every instance
        of a block has the same structure; `active()` tells whether it is used."""
        source, target = shapes
        stride = self._stride(source, target) if self.active(shapes) else (1, 1)
        conv = call(
            "nn.Conv2d",
            [(source[0], None), (target[0], None)],
            [("kernel_size", 1, _NONE), ("stride", stride, (1, 1)), ("bias", self.bias, True)],
        )
        parts = [Arg(conv)]
        if self.norm:
            norm = call(
                "nn.BatchNorm2d",
                [(target[0], None)],
                [("eps", self.eps, 1e-5), ("momentum", self.momentum, 0.1)],
            )
            parts.append(Arg(norm))
        return Call("nn.Sequential", tuple(parts))

    def torch_module(self, shapes: Sequence[Shape]) -> str | None:
        return super().torch_module(shapes) if self.active(shapes) else "nn.Identity()"
