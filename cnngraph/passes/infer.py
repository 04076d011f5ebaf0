"""Shape inference and cost counting, in one walk: a node's params and MACs come from the same
op object and the same shapes that produced its output shape, never from a second model."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

from .. import symbolic as sym
from ..errors import Diagnostics
from ..expr import Deferred, ExprError, Pending, ReadsInvalid, ShapeSymbol, evaluate
from ..formulas import conv_out
from ..ir import INPUT, Graph, Node
from ..ops import MAX_DIM, Op, Shape, ShapeError
from ..ops.base import Fields
from ..ops.conv import Projection
from . import segments as seg
from .segments import Plan, Segment
from .validate import build_op

# One tensor of one sample, or one layer's weights: far past any real network (32 GiB as
# float32), and what no device allocates.
MAX_VALUES = 1 << 33


class LayerInfo(NamedTuple):
    """What inference found for one node (a tuple: size scans create many)."""

    name: str
    kind: str
    op: Op | None
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    shape: Shape
    params: int
    macs: int
    active: bool = True  # False when a residual's `when` turned the node into a pass-through


class _Unknown(Exception):
    """A value depends on a shape that could not be inferred (that error is already reported)."""


class ShapeInference:
    """Runs inference over a checked graph; reusable for other input sizes (see sizes.py)."""

    def __init__(self, graph: Graph, shared: seg.SharedSizes | None = None) -> None:
        self.graph = graph
        self._ops: dict[tuple[str, str], Op] = {}
        self._ordered = [graph.nodes[n] for n in graph.order if n != INPUT]
        self._walked: dict[int, tuple[str, ...]] = {}  # what shared field values read
        self._reads_of: dict[str, tuple[str, ...]] = {}
        self._memo: dict[tuple[Any, ...], Shape | None] = {}  # node, shapes it sees -> shape
        self._segment_memo: dict[tuple[int, Shape | None], Shape | None] = {}
        # channel-free segments: (signature, height and width) -> exit size, largest area;
        # kept between the compiles of a Compiler, whose compiles share their op objects
        self._shared = shared or seg.SharedSizes()
        self._size_memo = self._shared.lookups
        self._nominal: dict[str, Shape] | None = None  # every node's shape at the spec's input
        self.nominal_layers: dict[str, LayerInfo] | None = None  # the last run, if complete
        self._settled: dict[tuple[Any, ...], tuple[Op, Any]] = {}
        self._unresolvable = {
            n.name for n in self._ordered if n.op is None and (n.broken or not n.pending)
        }
        self._node_ops: dict[str, Op] = {}  # the op each node was last inferred with
        # an op's shape and costs from the shapes entering it: layers alike share ops
        self._layer_memo: dict[tuple[Any, ...], tuple[Op, Shape, int, int]] = {}
        # Deferred expressions by id (the graph keeps them alive): what each read, and gave
        self._evaluated: dict[int, tuple[list[tuple[Pending, Any]], Any]] = {}

    def run(self, input_shape: Shape, diags: Diagnostics) -> dict[str, LayerInfo]:
        """Infer every node's shape and costs for `input_shape`, reporting problems."""
        if math.prod(input_shape) > MAX_VALUES:
            diags.error(
                "CG508",
                f"the input {list(input_shape)} holds {math.prod(input_shape):,} values per "
                f"sample, over {MAX_VALUES:,}",
                self.graph.where(("input",)),
                "no device holds it; give a smaller input",
            )
            return {}
        shapes: dict[str, Shape] = {INPUT: input_shape}
        layers = {INPUT: LayerInfo(INPUT, INPUT, None, (), (), input_shape, 0, 0)}
        for node in self._ordered:
            try:
                in_shapes = tuple(map(shapes.__getitem__, node.inputs))
            except KeyError:
                continue  # an upstream problem, already reported
            info = self._node(node, in_shapes, shapes, diags, costs=True)
            if info is not None:
                shapes[node.name] = info.shape
                layers[node.name] = info
        nominal = shapes if len(shapes) == len(self._ordered) + 1 else None
        self.nominal_layers = layers if nominal is not None else None
        if nominal != self._nominal:  # lookups by size hold for one set of channels
            self._nominal = nominal
            self.__dict__.pop("_channel_free", None)
            self.__dict__.pop("_runs", None)
        return layers

    def compiles(self, input_shape: Shape) -> bool:
        """Whether the model compiles for `input_shape`: `shapes(...) is not None`, sooner.

        The walk goes segment by segment (see segments.py): a segment's result is computed
        once per signature and entry shape, so a stage of identical blocks costs one lookup per
        block, and a scan's inputs, which converge after each downsampling, share the rest.
        With the channels of the nominal input, segments of fixed ops on C x H x W tensors are
        looked up by height and width alone: channel counts do not depend on the input size
        (they were checked at the nominal size), so the layers of a dense block, which differ
        only in channels, share one result."""
        nominal = self._nominal
        by_size = nominal is not None and input_shape[:1] == nominal[INPUT][:1]
        shape: Shape | None = input_shape
        segments, runs = self._segments, self._runs
        index = 0
        while index < len(segments):
            run = runs.get(index)
            before = shape
            for offset in range(run[0] if run else 1):
                if shape is None:
                    return False
                shape = self._through(index + offset, shape, by_size)
            if run and shape == before:
                index = run[1]  # a fixed point of the repeating part: its repeats keep it
            else:
                index += run[0] if run else 1
        return shape is not None

    def _through(self, index: int, shape: Shape, by_size: bool) -> Shape | None:
        """The shape segment `index` turns `shape` into, or None."""
        segment = self._segments[index]
        if by_size and index in self._channel_free:
            return self._sized(index, segment, shape)
        key = (segment.signature, shape)
        if key not in self._segment_memo:
            self._segment_memo[key] = self._walk(segment, shape)
        return self._segment_memo[key]

    @functools.cached_property
    def _runs(self) -> dict[int, tuple[int, int]]:
        """Where the segments repeat (a stage of identical blocks: the block, its activation,
        the block, ...): each position of such a run, with its period (1 or 2) and where the
        run ends. Two segments repeat each other if their signatures agree, and where sizes
        are looked up alone, their channels too."""
        segments = self._segments
        same = [
            (segment.signature, self._channel_free.get(index))
            for index, segment in enumerate(segments)
        ]
        runs: dict[int, tuple[int, int]] = {}
        for period in (1, 2):
            start = 0
            while start + 2 * period <= len(same):
                end = start + period
                while end < len(same) and same[end] == same[end - period]:
                    end += 1
                if end - start >= 2 * period:
                    for index in range(start, end - period + 1):
                        runs.setdefault(index, (period, end - (end - index) % period))
                    start = end
                else:
                    start += 1
        return runs

    def _sized(self, index: int, segment: Segment, entry: Shape) -> Shape | None:
        """A channel-free segment's exit for `entry`: its height and width by signature, its
        channels as at the nominal size."""
        known = self._size_memo.get((segment.signature, entry[1:]))
        channels, peak = self._channel_free[index]
        if known is None or (known[0] is not None and 2 * peak * known[1] > MAX_VALUES):
            # not seen, or with these channels its largest tensor might hold too many values,
            # or a layer on it too many weights (a layer_norm's are twice its input's values)
            shapes = self._segment_shapes(segment, entry)
            if shapes is None:
                return None
            exit_ = shapes[segment.exit or segment.entry]
            area = max(s[1] * s[2] for s in shapes.values())
            self._size_memo[(segment.signature, entry[1:])] = (exit_[1:], area)
            return exit_
        size, _ = known
        return None if size is None else (channels, *size)

    @functools.cached_property
    def _channel_free(self) -> dict[int, tuple[int, int]]:
        """Segments whose nodes have fixed ops and C x H x W shapes at the nominal size, with
        their exit's channels and their largest channel count."""
        nominal = self._nominal or {}
        out = {}
        for index, segment in enumerate(self._segments):
            part = self._plan[segment.start : segment.end]
            names = [segment.entry, *(node.name for node, _ in part)]
            fixed = all(
                node.op is not None and not node.op.mixes_axes and node.when is True
                for node, _ in part
            )
            if fixed and all(len(nominal.get(name, ())) == 3 for name in names):
                exit_ = nominal[segment.exit or segment.entry]
                out[index] = (exit_[0], max(nominal[name][0] for name in names))
        return out

    def _walk(self, segment: Segment, entry: Shape | None) -> Shape | None:
        shapes = self._segment_shapes(segment, entry)
        if shapes is None:
            return None
        return shapes[segment.entry] if segment.exit is None else shapes[segment.exit]

    def _segment_shapes(self, segment: Segment, entry: Shape | None) -> dict[str, Shape] | None:
        if entry is None:
            return None
        shapes = {segment.entry: entry}
        for node, reads in self._plan[segment.start : segment.end]:
            if self._step(node, reads, shapes) is None:
                return None
        return shapes

    def least_growth(self, small: Shape, large: Shape, axis: int) -> int | None:
        """The least amount by which any node's size along `axis` grows from input `small` to
        input `large` (both compile; `large` is larger along `axis`), None if none grows:
        sizes.py bounds the period of the valid sizes with it. Segment by segment, each
        signature and pair of entry shapes once."""
        least: int | None = None
        seen: dict[tuple[int, Shape, Shape], tuple[int | None, Shape, Shape]] = {}
        for segment in self._segments:
            key = (segment.signature, small, large)
            if key not in seen:
                a = self._segment_shapes(segment, small)
                b = self._segment_shapes(segment, large)
                if a is None or b is None:
                    return None  # not for inputs that compile
                growths = [
                    b[name][axis] - size[axis]
                    for name, size in a.items()
                    if len(size) == 3 and b[name][axis] > size[axis]
                ]
                exit_ = segment.exit or segment.entry
                seen[key] = (min(growths, default=None), a[exit_], b[exit_])
            growth, small, large = seen[key]
            if growth is not None:
                least = growth if least is None else min(least, growth)
        return least

    @functools.cached_property
    def _plan(self) -> Plan:
        """Each node in walk order, with what its result depends on besides its inputs."""
        return [(n, self._reads(n)) for n in self._ordered]

    @functools.cached_property
    def _segments(self) -> list[Segment]:
        return seg.segments(self._plan, self._shared.signatures)

    def _reads(self, node: Node) -> tuple[str, ...]:
        found = self._reads_of.get(node.name)
        if found is None:
            found = self._reads_of[node.name] = seg.reads(node, self._walked)
        return found

    def shapes(self, input_shape: Shape) -> dict[str, Shape] | None:
        """Every node's shape for `input_shape`, or None if the model does not compile for it.

        Quick and quiet, for size scans that try many inputs. Deep layers see the same few
        shapes again and again, so results are kept per node and input shapes.
        """
        shapes: dict[str, Shape] = {INPUT: input_shape}
        for node, reads in self._plan:
            if self._step(node, reads, shapes) is None:
                return None
        return shapes

    def _step(self, node: Node, reads: tuple[str, ...], shapes: dict[str, Shape]) -> Shape | None:
        """One node's shape, quietly, into `shapes`; kept per input shapes and shapes read."""
        in_shapes = tuple(map(shapes.__getitem__, node.inputs))
        key: tuple[Any, ...] = (node.name, in_shapes)
        if reads:
            if any(r not in shapes for r in reads):
                return None  # a read of a later node: not in a checked graph
            key = (*key, *(shapes[r] for r in reads))
        if key in self._memo:
            out = self._memo[key]
        else:
            info = self._node(node, in_shapes, shapes, None, costs=False)
            out = self._memo[key] = None if info is None else info.shape
        if out is not None:
            shapes[node.name] = out
        return out

    def symmetric(self) -> bool:
        """Whether every op treats height and width alike, so one axis answers for both."""
        ops = [n.op for n in self.graph.nodes.values()] + list(self._ops.values())
        unique = {id(op): op for op in ops if op is not None}  # layers alike share ops
        return all(op.symmetric() for op in unique.values())

    def _node(
        self,
        node: Node,
        in_shapes: tuple[Shape, ...],
        shapes: dict[str, Shape],
        diags: Diagnostics | None,
        costs: bool,
    ) -> LayerInfo | None:
        if node.name in self._unresolvable:
            return None  # its fields were wrong; validation has said so
        try:
            op, when = self._settle(node, shapes, diags)
        except _Unknown:
            return None
        except ExprError as exc:
            if diags is not None:
                diags.error(
                    exc.code, f"{node.name}: {exc.message}", self.graph.where(node.src), exc.hint
                )
            return None
        if op is None:
            return None
        self._node_ops[node.name] = op
        settled = op
        if isinstance(op, Projection) and op.stride is None:
            op = self._strided_projection(node, op, in_shapes)
        if not isinstance(when, bool):
            if diags is not None:
                diags.error(
                    "CG312",
                    f"{node.name}: residual `when` must be true or false, got {when!r}",
                    self.graph.where((*node.src, "when")),
                    "compare explicitly, e.g. when: ${stride == 1 and in_channels == out}",
                )
            return None
        if not when:
            return LayerInfo(
                node.name, node.kind, op, node.inputs, in_shapes, in_shapes[0], 0, 0, active=False
            )
        low, high = op.arity
        if not low <= len(in_shapes) <= (high or len(in_shapes)):
            if diags is not None:
                wanted = (
                    f"{low}"
                    if low == high
                    else f"at least {low}"
                    if high is None
                    else f"{low} to {high}"
                )
                diags.error(
                    "CG408",
                    f"{node.name}: {node.kind} takes {wanted} input(s), got {len(in_shapes)}",
                    self.graph.where(node.src, at_key=True),
                    "list the inputs with `from: [a, b]`",
                )
            return None
        key = (id(op), in_shapes, costs)
        known = self._layer_memo.get(key)
        if known is not None and known[0] is op:  # the op is kept with it: its id is its own
            _, out, params, macs = known
            return LayerInfo(node.name, node.kind, op, node.inputs, in_shapes, out, params, macs)
        try:
            out = op.infer(in_shapes)
            if max(out) > MAX_DIM:
                raise ShapeError(
                    "CG508", f"{node.kind} output {list(out)} has a dimension above {MAX_DIM:,}"
                )
            if math.prod(out) > MAX_VALUES:
                raise ShapeError(
                    "CG508",
                    f"{node.kind} output {list(out)} holds {math.prod(out):,} values per sample, "
                    f"over {MAX_VALUES:,} ({4 * MAX_VALUES // 2**30} GiB as float32)",
                    "no device holds it; check the input size and the channel counts",
                )
            # in size scans too: a layer_norm's or a linear's weights follow the input size
            params = op.count_params(in_shapes, out)
            if params > MAX_VALUES:
                raise ShapeError(
                    "CG508",
                    f"{node.kind} has {params:,} weights, over {MAX_VALUES:,}",
                    "no device holds them; check the channel and feature counts",
                )
        except ShapeError as exc:
            if diags is not None:
                if exc.field in node.fields:
                    loc = self.graph.where(node.field_path(exc.field))
                else:
                    loc = self.graph.where(node.src, at_key=True)
                diags.error(
                    exc.code, f"{node.name}: {exc.message}", loc, exc.hint, fold_key=exc.message
                )
            return None
        macs = op.count_macs(in_shapes, out) if costs else 0
        if op is settled:  # (not a strided copy made for this call: it would never recur)
            self._layer_memo[key] = (op, out, params, macs)
        return LayerInfo(node.name, node.kind, op, node.inputs, in_shapes, out, params, macs)

    def _settle(
        self, node: Node, shapes: dict[str, Shape], diags: Diagnostics | None
    ) -> tuple[Op | None, Any]:
        """A node's op and `when`, resolved once per distinct channel counts they read (a
        size scan changes heights and widths, rarely channels)."""
        if node.when is True and node.op is not None:
            return node.op, True
        reads = self._reads(node)
        key = (node.name, *(shapes[r][0] if r in shapes else None for r in reads))
        known = self._settled.get(key)
        if known is not None:
            return known
        op = node.op or self._resolve_op(node, shapes, diags)
        when = True if node.when is True else self._resolve(node.when, shapes)
        if op is not None and None not in key:
            self._settled[key] = op, when
        return op, when

    def _resolve_op(
        self, node: Node, shapes: dict[str, Shape], diags: Diagnostics | None
    ) -> Op | None:
        """Build the op of a node whose fields read in_channels, now that shapes are known."""
        fields = {}
        for key, value in node.fields.items():
            try:
                fields[key] = self._resolve(value, shapes)
            except ExprError as exc:
                if diags is not None:
                    diags.error(
                        exc.code,
                        f"{node.name}: {key}: {exc.message}",
                        self.graph.where(node.field_path(key)),
                        exc.hint,
                    )
                return None
        cache_key = (node.kind, repr(sorted(fields.items())))
        op = self._ops.get(cache_key)
        if op is None:  # failures are not kept: each failing layer reports at its own place
            op = build_op(self.graph, node, fields, diags or Diagnostics(max_errors=None))
            if op is not None:
                self._ops[cache_key] = op
        return op

    def _strided_projection(
        self, node: Node, op: Projection, in_shapes: tuple[Shape, ...]
    ) -> Projection:
        """A residual's shortcut around a body that downsamples is a strided 1x1 conv, as in
        torchvision, even where the sizes happen not to change (a 1x1 input to a stride-2
        body): the weights a model has do not depend on its input size."""
        if len(in_shapes) != 2 or in_shapes[0] != in_shapes[1] or len(in_shapes[0]) != 3:
            return op
        if min(in_shapes[0][1:]) > 1:
            return op  # a stride would have changed the size: the body keeps it, so has none
        stride, current, steps = 1, node.inputs[1], 0
        while current != node.inputs[0]:
            inner, found = self.graph.nodes.get(current), self._node_ops.get(current)
            steps += 1
            if inner is None or found is None or not inner.inputs or steps > len(self._ordered):
                return op
            fields = {k: sym.const(v) for k, v in found.__dict__.items()}
            rule = type(found).stride_rule(Fields(type(found), fields))
            if rule is None or not rule.constant or not isinstance(rule.value, int):
                return op
            stride, current = stride * rule.value, inner.inputs[0]
        if stride == 1 or any(conv_out(n, 1, stride, 0, 1) != n for n in in_shapes[0][1:]):
            return op
        return op.model_copy(update={"stride": (stride, stride)})

    def _deferred(self, value: Deferred, shapes: dict[str, Shape]) -> Any:
        """An expression that reads channel counts, evaluated again only when those counts
        change: size scans infer shapes many times, and an expression may be costly (or fail
        after costing its whole budget)."""
        known = self._evaluated.get(id(value))
        if known is not None:
            reads, outcome = known
            if all(self._resolve(p, shapes) == v for p, v in reads):
                if isinstance(outcome, ExprError):  # a fresh one: a raise extends a traceback
                    raise ExprError(outcome.code, outcome.message, outcome.hint)
                return outcome
        reads = []

        def read(pending: Pending) -> Any:
            got = self._resolve(pending, shapes)
            reads.append((pending, got))
            return got

        try:
            outcome = evaluate(value.text, value.env, read)
        except ReadsInvalid:
            raise _Unknown from None  # that value's error is reported
        except ExprError as exc:
            self._evaluated[id(value)] = (reads, exc)
            raise
        self._evaluated[id(value)] = (reads, outcome)
        return outcome

    def _resolve(self, value: Any, shapes: dict[str, Shape]) -> Any:
        if isinstance(value, list):
            return [self._resolve(v, shapes) for v in value]
        if isinstance(value, ShapeSymbol):
            shape = shapes.get(value.node)
            if shape is None:
                raise _Unknown
            return shape[0]
        if isinstance(value, Deferred):
            return self._deferred(value, shapes)
        if isinstance(value, Pending):  # pragma: no cover - the two kinds above are all
            raise _Unknown
        return value
