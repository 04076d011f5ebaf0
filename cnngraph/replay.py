"""Block instances replayed: a block called again with the same params from the same call site
expands to the same layers under another name. The expander records the first expansion and
replays it, renamed, for the others: a deep stage calls one block hundreds of times, and a
sweep compiles thousands of such stages.

What an expansion depends on is the block, its bound params and where each was written (the
locations diagnostics point to), and the model's params (fixed for one compile). An
expansion that reported anything is not recorded: its diagnostics come from expanding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .expr import Deferred, ShapeSymbol, contains_pending
from .ir import Node, Scope
from .source import KeyPath

MAX_KEY_ITEMS = 256  # params holding more values than this are not worth a key


@dataclass
class Template:
    """One recorded expansion: what the body added, under `prefix`, from `sources`."""

    prefix: str
    sources: tuple[str, ...]
    output: str
    depth: int  # scopes enclosing the call, which a replay takes from its own call
    nodes: list[Node] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    switched_off: list[tuple[str, KeyPath]] = field(default_factory=list)
    entries: int = 0
    work: int = 0  # what its expressions spent of the compile's budget
    # filled by replays: each name as (0, suffix after the prefix) | (1, source index) |
    # (2, itself), and whether a node's fields and `when` are plain values (shared, not copied)
    relative: dict[tuple[str, bool], tuple[int, str | int]] = field(default_factory=dict)
    plain: dict[int, bool] = field(default_factory=dict)


def key(
    block: str,
    params: list[tuple[str, Any, KeyPath]],
    sources: list[str],
    stack: tuple[str, ...],
) -> Any:
    """A hashable key for a call, or None when a param cannot be one (it reads in_channels,
    or is a large or unusual value). Besides the params: which of the sources are the same
    tensor (a block fed [x, x] is wired unlike one fed [x, y]), and the blocks being expanded
    around the call (what a recursion or depth check inside would see)."""
    frozen = []
    budget = [MAX_KEY_ITEMS]
    for name, value, src in params:
        item = _frozen(value, budget)
        if item is None:
            return None
        frozen.append((name, item, src))
    pattern = tuple(sources.index(s) for s in sources)
    return (block, tuple(frozen), pattern, stack)


def _frozen(value: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(value, float):
        return ("float", repr(value))  # 0.0 and -0.0 are different params
    if value is None or isinstance(value, bool | int | str):
        return (type(value).__name__, value)  # True, 1 and 1.0 are different params
    if isinstance(value, list):
        items = [_frozen(v, budget) for v in value]
        return None if any(i is None for i in items) else ("list", *items)
    return None  # a value known only with shapes, a mapping, ...


class Renamer:
    """Copies a template's nodes and scopes under a new prefix, from new sources."""

    def __init__(
        self, template: Template, prefix: str, sources: list[str], scope: tuple[str, ...]
    ) -> None:
        self.template, self.new, self.new_sources = template, prefix, sources
        self.depth, self.outer = template.depth, scope
        self._copies: dict[int, Any] = {}
        self._scopes: dict[tuple[str, ...], tuple[str, ...]] = {}  # the nodes of a scope share
        self.symbols: list[ShapeSymbol] = []  # made here: the expander links them

    def name(self, name: str) -> str:
        """A name the template refers to: one of its sources first (a source may be a tap
        into the call's own layers, `from: s.conv` for `s`), else one of its own layers."""
        return self._renamed(name, True)

    def defined(self, name: str) -> str:
        """A name the template gives a layer or scope of its own."""
        return self._renamed(name, False)

    def _renamed(self, name: str, reference: bool) -> str:
        relative = self.template.relative.get((name, reference))
        if relative is None:
            old = self.template.prefix
            if reference and name in self.template.sources:
                relative = (1, self.template.sources.index(name))
            elif name.startswith(old) and name[len(old) : len(old) + 1] in ("", "."):
                relative = (0, name[len(old) :])
            else:
                relative = (2, name)
            self.template.relative[(name, reference)] = relative
        kind, part = relative
        if kind == 0:
            return self.new + str(part)
        return self.new_sources[int(part)] if kind == 1 else str(part)

    def scopes(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        """The enclosing scopes: the new call's, then the block's own, renamed."""
        renamed = self._scopes.get(scopes)
        if renamed is None:
            renamed = (*self.outer, *(self.defined(s) for s in scopes[self.depth :]))
            self._scopes[scopes] = renamed
        return renamed

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(v) for v in value] if contains_pending(value) else value
        if not isinstance(value, ShapeSymbol | Deferred):
            return value
        copy = self._copies.get(id(value))  # shared by several fields: shared again
        if copy is None:
            if isinstance(value, ShapeSymbol):
                copy = ShapeSymbol(self.name(value.node))
                self.symbols.append(copy)
            else:
                copy = Deferred(value.text, {k: self.value(v) for k, v in value.env.items()})
            self._copies[id(value)] = copy
        return copy

    def node(self, node: Node) -> Node:
        plain = self.template.plain.get(id(node))
        if plain is None:
            values = [*node.fields.values(), node.when]
            plain = self.template.plain[id(node)] = not any(map(contains_pending, values))
        # plain fields are shared by the copies: nothing changes a node's fields once made
        fields = node.fields if plain else {k: self.value(v) for k, v in node.fields.items()}
        return Node(
            self.defined(node.name),
            node.kind,
            tuple(self.name(n) for n in node.inputs),
            fields,
            node.src,
            node.field_src,
            self.scopes(node.scope),
            node.when if plain else self.value(node.when),
            None,
            node.init,
        )

    def scope(self, scope: Scope) -> Scope:
        return Scope(
            self.defined(scope.path),
            scope.kind,
            scope.label,
            scope.src,
            self.name(scope.output),
            tuple(self.name(s) for s in scope.inputs),
            {k: self.value(v) for k, v in scope.params.items()},
        )
