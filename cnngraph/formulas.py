"""Torch's exact output-size formulas, as pure integer functions of one spatial dimension.

Results may be zero or negative; callers decide how to report that.
"""

from __future__ import annotations


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
