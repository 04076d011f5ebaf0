"""Torch's exact output-size formulas, as pure integer functions of one spatial dimension.

Results may be zero or negative; callers decide how to report that.
"""

from __future__ import annotations

import math
from typing import NamedTuple


def conv_out(n: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Conv2d: floor((n + pads - d(k-1) - 1) / s) + 1, pads being both sides together."""
    return (n + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_out(
    n: int, kernel: int, stride: int, pad: int, dilation: int, output_padding: int
) -> int:
    """ConvTranspose2d: (n-1)s - 2p + d(k-1) + output_padding + 1."""
    return (n - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1


def pool_out(n: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """MaxPool2d/AvgPool2d, including ceil_mode's rule that the last window must start inside
    the input or its left padding (otherwise that window is dropped)."""
    extra = stride - 1 if ceil_mode else 0
    out = (n + 2 * pad - dilation * (kernel - 1) - 1 + extra) // stride + 1
    if ceil_mode and (out - 1) * stride >= n + pad:
        out -= 1
    return out


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """padding='same' (stride 1): d(k-1) in total, the odd pixel at the end, as in torch."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def projection_stride(n_in: int, n_out: int) -> int | None:
    """The smallest stride for which a 1x1 conv maps size n_in to n_out, if any."""
    for stride in range(1, max(n_in, 1) + 1):
        if conv_out(n_in, 1, stride, 0, 1) == n_out:
            return stride
    return None


class SizeMap(NamedTuple):
    """A size along one axis as a function of the input's: n -> floor((a*n + c) / s).

    Windows (convolutions, pools) and their compositions have this form exactly, as have
    transposed convolutions (s = 1) and fixed sizes (a = 0), so a chain of them maps the input
    size by one such function. Kept in lowest terms, two maps are equal exactly when they
    agree at every n. (A tuple: size rules hash and compare maps for every layer.)"""

    a: int
    c: int
    s: int = 1

    @staticmethod
    def of(a: int, c: int, s: int) -> SizeMap:
        g = math.gcd(a, s)  # floor((g*a'n + c) / (g*s')) = floor((a'n + floor(c/g)) / s')
        return SizeMap(a // g, c // g, s // g)

    @staticmethod
    def window(kernel: int, stride: int, pad_total: int, dilation: int) -> SizeMap:
        """conv_out as a map: floor((n + pads - d(k-1) - 1) / s) + 1."""
        return SizeMap.of(1, pad_total - dilation * (kernel - 1) - 1 + stride, stride)

    def __call__(self, n: int) -> int:
        return (self.a * n + self.c) // self.s

    def then(self, outer: SizeMap) -> SizeMap | None:
        """`outer` applied after this map, where the composition keeps the form."""
        if outer.a == 0 or self.a == 0:
            return outer if outer.a == 0 else SizeMap(0, outer(self(0)))
        if self.s == 1:
            return SizeMap.of(outer.a * self.a, outer.a * self.c + outer.c, outer.s)
        if outer.a == 1:  # floor((floor(x / s1) + c2) / s2) = floor((x + c2*s1) / (s1*s2))
            return SizeMap.of(self.a, self.c + outer.c * self.s, self.s * outer.s)
        return None

    def least(self, size: int) -> int | None:
        """The smallest n >= 1 this map takes to `size` or more (None if none)."""
        if self.a == 0:
            return 1 if self(0) >= size else None
        return max(1, -((self.c - size * self.s) // self.a))  # ceil((size*s - c) / a)

    @property
    def fixed(self) -> bool:
        return self.a == 0


IDENTITY = SizeMap(1, 0)
