"""Which input sizes compile: the minimum height and width, and the divisibility they need.

Heights and widths are independent in every op, so each axis is analysed with the other held
at its nominal size. Where every op's size rule is known as a map (formulas.SizeMap: windows,
transposed convolutions, fixed sizes, and their compositions) and every join meets inputs of
one map, the answer is derived from the maps in one walk: each node's size is an exact
function of the input's, every size from the largest of the ops' least sizes on compiles, and
no smaller one does. Otherwise each candidate size is tried by running shape inference; the
rules of every op are exact, so the answer is too.

Sizes up to LINEAR_SCAN are tried one by one. Past it (a huge input or kernel), the search
relies on the shape the valid sizes have, `n >= minimum` and at most a period apart, and takes
`period` tries per halving: a 90,000-pixel side costs about a thousand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from ..formulas import IDENTITY, SizeMap
from ..ir import INPUT
from ..ops import Shape
from .infer import LayerInfo, ShapeInference

MAX_PERIOD = 64
LINEAR_SCAN = 1024


@dataclass(frozen=True)
class AxisRule:
    """Valid sizes along one axis: n >= minimum with n % step in residues (all, if step is 1)."""

    axis: str
    minimum: int
    step: int
    residues: tuple[int, ...]
    # tried up to here, the pattern repeating past it; where derived, the nominal size: every
    # tensor is at most as large up to it (past it, the limit on values may cut in)
    checked_up_to: int

    def accepts(self, n: int) -> bool:
        return n >= self.minimum and n % self.step in self.residues

    def describe(self) -> str:
        if self.step == 1:
            return f"{self.axis} >= {self.minimum}"
        if len(self.residues) == 1 and self.residues[0] == 0:
            return f"{self.axis} >= {self.minimum}, a multiple of {self.step}"
        rest = ", ".join(str(r) for r in self.residues)
        return f"{self.axis} >= {self.minimum}, {self.axis} mod {self.step} in {{{rest}}}"

    def as_tuple(self) -> tuple[int, int, tuple[int, ...], int]:
        return self.minimum, self.step, self.residues, self.checked_up_to

    def to_dict(self) -> dict[str, object]:
        return {
            "min": self.minimum,
            "step": self.step,
            "residues": list(self.residues),
            "checked_up_to": self.checked_up_to,
        }


def input_size_rules(
    inference: ShapeInference, shape: Shape, derive: bool = True
) -> tuple[AxisRule, AxisRule] | None:
    """Rules for H and W, or None for inputs without spatial dims or when no size compiles;
    derived from the ops' size maps where they allow (`derive=False`: always by trying)."""
    if len(shape) != 3:
        return None
    nominal = inference.nominal_layers  # complete: the run compiled its input
    compiled = nominal is not None and nominal[INPUT].shape == shape
    pivot = (
        shape if compiled or inference.compiles(shape) else _square_that_compiles(inference, shape)
    )
    if pivot is None:
        return None
    rules: list[AxisRule] = []
    for axis, name in ((1, "H"), (2, "W")):
        if axis == 2 and pivot[1] == pivot[2] and inference.symmetric():
            rules.append(AxisRule("W", *rules[0].as_tuple()))
            break

        derived = _derived(inference, pivot, axis, name) if derive else None
        if derived is not None:
            rules.append(derived)
            continue

        def compiles(n: int, axis: int = axis) -> bool:
            candidate = (*pivot[:axis], n, *pivot[axis + 1 :])
            return inference.compiles(candidate)

        rule = _scan(name, pivot[axis], _period(inference, pivot, axis), compiles)
        if rule is None:
            return None
        rules.append(rule)
    return rules[0], rules[1]


def _derived(inference: ShapeInference, pivot: Shape, axis: int, name: str) -> AxisRule | None:
    """The rule from the ops' size maps, in one walk over the nominal inference (whose ops,
    settled by channel counts, hold at every size: channels do not depend on the size where no
    op mixes axes), or None where some op or join has no such rule."""
    layers = inference.nominal_layers
    if layers is None or layers[INPUT].shape != pivot:
        return None
    # each C x H x W tensor's size along the axis as a map of the input's; None for other
    # tensors, which must not depend on the size
    maps: dict[str, SizeMap | None] = {INPUT: IDENTITY}
    # layers alike share ops, and their inputs' maps meet again after each downsampling
    seen: dict[tuple[Any, ...], tuple[SizeMap, int] | None] = {}
    minimum = 1
    for info in layers.values():
        if info.name == INPUT:
            continue
        inputs = tuple(map(maps.__getitem__, info.inputs))
        if all(m is None or m.fixed for m in inputs):  # the same shapes at every size
            maps[info.name] = SizeMap(0, info.shape[axis]) if len(info.shape) == 3 else None
            continue
        key = (inputs, id(info.op), info.active, len(info.shape))
        if key not in seen:
            seen[key] = _through(info, inputs, axis - 1)
        found = seen[key]
        if found is None:
            return None
        maps[info.name], least = found
        minimum = max(minimum, least)
    return AxisRule(name, minimum, 1, (0,), max(minimum, pivot[axis]))


def _through(
    info: LayerInfo, inputs: tuple[SizeMap | None, ...], axis: int
) -> tuple[SizeMap, int] | None:
    """A node's output map and the least input size it needs, from its inputs' maps."""
    if len(info.shape) != 3 or None in inputs:
        return None  # features that follow the size (a flatten of a feature map)
    sized = cast(tuple[SizeMap, ...], inputs)
    if not info.active:  # a pass-through
        return sized[0], 1
    op = info.op
    if op is None or op.mixes_axes:
        return None
    if len(sized) > 1:
        out = op.joined_size_map(axis, sized)
        return None if out is None else (out, 1)
    rule = op.size_map(axis)
    if rule is None:
        return None
    out, least = sized[0].then(rule[0]), sized[0].least(rule[1])
    return None if out is None or least is None else (out, least)


def _square_that_compiles(inference: ShapeInference, shape: Shape) -> Shape | None:
    """With one axis held fixed, only sizes valid for that axis can be scanned along the other:
    when the given size fails, start from the smallest square input that works."""
    n = _first_valid(
        lambda n: inference.compiles((shape[0], n, n)),
        max(2 * max(shape[1:]), 512),
        MAX_PERIOD,
    )
    return None if n is None else (shape[0], n, n)


def _period(inference: ShapeInference, shape: Shape, axis: int) -> int:
    """A bound on the period of the valid sizes: the largest downsampling of any node whose
    size follows the input. Every op's size rule shifts by a whole number when its input shifts
    by a multiple of its stride, so the pattern of valid sizes repeats with that period."""
    n = shape[axis]
    doubled = (*shape[:axis], 2 * n, *shape[axis + 1 :])
    if not (inference.compiles(shape) and inference.compiles(doubled)):
        return MAX_PERIOD
    growth = inference.least_growth(shape, doubled, axis)
    ratio = 1.0 if growth is None else max(1.0, n / growth)
    return min(1 << math.ceil(math.log2(ratio)), MAX_PERIOD)


def _scan(name: str, nominal: int, period: int, test: Callable[[int], bool]) -> AxisRule | None:
    # Past the nominal size too: when the nominal size fails, the smallest that works is news.
    # Up to the nominal size when it compiles: far larger ones may hold too many values.
    minimum = _first_valid(test, nominal if test(nominal) else max(2 * nominal, 512), period)
    if minimum is None:
        return None
    valid = [test(n) for n in range(minimum, minimum + period)]
    # The pattern repeats every `period`; it may repeat more often (e.g. every size works).
    step = next(
        p
        for p in range(1, period + 1)
        if period % p == 0 and all(valid[i] == valid[i % p] for i in range(period))
    )
    residues = tuple(sorted((minimum + i) % step for i in range(step) if valid[i]))
    return AxisRule(name, minimum, step, residues, minimum + period - 1)


def _first_valid(test: Callable[[int], bool], end: int, period: int) -> int | None:
    """The smallest n in 1..end that passes `test`, or None."""
    found = next((n for n in range(1, min(end, LINEAR_SCAN) + 1) if test(n)), None)
    if found is not None or end <= LINEAR_SCAN:
        return found

    def window(x: int) -> int | None:
        """The first valid size in [x, x + period)."""
        return next((n for n in range(x, min(x + period, end + 1)) if test(n)), None)

    # Past the minimum, valid sizes are at most `period` apart (a pattern that repeats with
    # the downsampling), so a window holds one exactly from `minimum - period + 1` on: binary
    # search for the first window that does.
    low, high = LINEAR_SCAN + 1, max(LINEAR_SCAN + 1, end - period + 1)
    if window(high) is None:
        return None  # nothing compiles, or only below the top window: not at these sizes
    while low < high:
        middle = (low + high) // 2
        if window(middle) is not None:
            high = middle
        else:
            low = middle + 1
    return window(low)


def describe(rules: tuple[AxisRule, AxisRule] | None) -> str:
    """`H, W >= 15`, or one clause per axis when they differ."""
    if rules is None:
        return "fixed (no spatial dims)"
    h, w = rules
    if h.as_tuple() == w.as_tuple():
        return h.describe().replace("H", "H, W", 1)
    return f"{h.describe()}; {w.describe()}"
