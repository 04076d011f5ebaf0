"""The inference plan cut into segments, for size scans that walk a model many times.

A cut is a point of the walk where one tensor is all that later nodes read (as inputs, or
through fields that read its channel count): between two blocks of a chain. What follows a cut
depends on that tensor's shape alone, so a segment (the nodes from one cut to the next) is a
function from one shape to another. Segments built alike (the 500 blocks of a deep stage)
share a signature, and a scan computes each signature's result once per input shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..expr import Deferred, ShapeSymbol
from ..ir import INPUT, Node

Plan = list[tuple[Node, tuple[str, ...]]]  # each node, and the nodes whose shapes it reads
_LARGE = 64  # lists longer than this are told apart by identity, not walked


class Segment(NamedTuple):
    start: int  # plan positions [start, end)
    end: int
    entry: str  # the tensor it starts from
    exit: str | None  # the tensor the next segment starts from; None for the last
    signature: int  # equal for segments that compute the same function of their entry's shape


def reads(node: Node, walked: dict[int, tuple[str, ...]]) -> tuple[str, ...]:
    """The nodes whose shapes a node's fields and `when` read, through deferred expressions.
    `walked` keeps what shared values (one list in many layers) were found to read."""

    def walk(value: Any) -> tuple[str, ...]:
        if isinstance(value, ShapeSymbol):
            return (value.node,)
        if not isinstance(value, list | Deferred):
            return ()
        known = walked.get(id(value))
        if known is None:
            walked[id(value)] = ()  # a value that holds itself reads nothing more
            items = value if isinstance(value, list) else value.env.values()
            known = walked[id(value)] = tuple(dict.fromkeys(r for v in items for r in walk(v)))
        return known

    # a node with an op has final fields (validation built it): only `when` may read shapes
    if node.op is not None:
        if node.when is True:
            return ()
        values: tuple[Any, ...] = (node.when,)
    else:
        values = (*node.fields.values(), node.when)
    return tuple(dict.fromkeys(r for v in values for r in walk(v)))


class SharedSizes:
    """Size lookups kept between the compiles of one spec (a sweep): signatures interned in
    one table, and the height-and-width results of channel-free segments, whose structures
    hold nothing but the identities of op objects the compiles share (see model.Compiler)."""

    def __init__(self) -> None:
        self.signatures: dict[tuple[Any, ...], int] = {}
        self.lookups: dict[tuple[int, tuple[int, ...]], tuple[tuple[int, ...] | None, int]] = {}

    def clear(self) -> None:
        self.signatures.clear()
        self.lookups.clear()


def segments(plan: Plan, signatures: dict[tuple[Any, ...], int] | None = None) -> list[Segment]:
    """The plan's segments; `signatures` interns their structures (a shared table, or one of
    their own)."""
    cuts = _cuts(plan)
    starts = sorted({0, *cuts})
    signatures = {} if signatures is None else signatures
    out = []
    for start, end in zip(starts, [*starts[1:], len(plan)], strict=True):
        entry = cuts.get(start, INPUT)
        exit_ = cuts.get(end)
        structure = _structure(plan[start:end], entry, exit_)
        signature = signatures.setdefault(structure, len(signatures))
        out.append(Segment(start, end, entry, exit_, signature))
    return out


def _cuts(plan: Plan) -> dict[int, str]:
    """The positions where one tensor is all that later nodes read, and its name."""
    last: dict[str, int] = {}
    for index, (node, read) in enumerate(plan):
        for name in (*node.inputs, *read):
            last[name] = index
    live = {INPUT} if INPUT in last else set()
    cuts: dict[int, str] = {}
    for index, (node, _) in enumerate(plan):
        if len(live) == 1:
            cuts[index] = next(iter(live))
        live = {n for n in live if last[n] > index}
        if last.get(node.name, -1) > index:
            live.add(node.name)
    return cuts


def _structure(part: Plan, entry: str, exit_: str | None) -> tuple[Any, ...]:
    """What a segment computes, with its tensors named by position: the entry is -1."""
    position = {entry: -1, **{node.name: i for i, (node, _) in enumerate(part)}}
    nodes: list[tuple[Any, ...]] = []
    for node, _ in part:
        inputs = tuple(position[name] for name in node.inputs)
        if node.op is not None and node.when is True:
            # validation gives layers written alike one op object
            nodes.append((id(node.op), inputs))
        else:
            fields = tuple((k, _frozen(v, position)) for k, v in node.fields.items())
            nodes.append((node.kind, inputs, fields, _frozen(node.when, position)))
    return (tuple(nodes), None if exit_ is None else position[exit_])


def _frozen(value: Any, position: dict[str, int]) -> Any:
    """A field's value as a hashable key; the tensors it reads by position."""
    if isinstance(value, ShapeSymbol):
        return ("in_channels of", position[value.node])
    if isinstance(value, Deferred):
        env = tuple((k, _frozen(v, position)) for k, v in value.env.items())
        return ("expression", value.text, env)
    if isinstance(value, list) and len(value) <= _LARGE:
        return ("list", *(_frozen(v, position) for v in value))
    if isinstance(value, bool | int | float | str | type(None)):
        return (type(value).__name__, value)
    return ("object", id(value))  # kept alive by the graph, so the identity is stable
