"""The intermediate representation: named nodes in spec order, their scopes, the outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import Location
from .expr import contains_invalid, contains_pending
from .ops import Op, Shape
from .source import Document, KeyPath
from .spec import Init, SpecFile

INPUT = "input"  # the name of the model's input node


@dataclass
class Node:
    """One op instance. `name` is its dotted module path (`layer1.0.conv1`), as in a state_dict."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    fields: dict[str, Any]  # evaluated values; may still hold Pending values (see expr_syntax.py)
    src: KeyPath  # where the layer entry is written in the document
    field_src: dict[str, KeyPath] = field(default_factory=dict)  # fields given elsewhere
    scope: tuple[str, ...] = ()  # enclosing scope paths, outermost first
    when: Any = True  # False (or a Pending that resolves to False) makes it a pass-through
    op: Op | None = None  # set by validation once the fields are final
    init: Init | None = None  # initial weights for this layer alone

    @property
    def pending(self) -> bool:
        """Whether some field waits for shape inference (it reads in_channels)."""
        return any(contains_pending(v) for v in self.fields.values())

    @property
    def broken(self) -> bool:
        """Whether a field failed to evaluate; that error is already reported."""
        return any(contains_invalid(v) for v in self.fields.values())

    def field_path(self, name: str) -> KeyPath:
        return self.field_src.get(name, (*self.src, name))


ScopeKind = Literal["block", "repeat", "branch"]


@dataclass
class Scope:
    """A group of nodes: a block instance, a repeat container, or a branch of a block."""

    path: str
    kind: ScopeKind
    label: str
    src: KeyPath
    output: str = ""  # the node (or scope path) producing the scope's result
    inputs: tuple[str, ...] = ()  # the tensors entering it, in the block's declared order
    params: dict[str, Any] = field(default_factory=dict)  # a block instance's bound params


@dataclass
class Graph:
    name: str
    doc: Document
    input_shape: Shape
    nodes: dict[str, Node] = field(default_factory=dict)  # insertion order is spec order
    scopes: dict[str, Scope] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # output label -> node name
    eval_output: str | None = None  # the output label returned alone in eval mode
    params: dict[str, Any] = field(default_factory=dict)  # model-level param values
    init: dict[str, Init] = field(default_factory=dict)  # op kind -> initial weights
    order: list[str] = field(default_factory=list)  # topological, set by the check pass
    definitions: SpecFile | None = None  # the spec's typed definitions (the code generator's)
    # what the caller set over the spec (`--set`, `--input`): a built file takes them as defaults
    overrides: dict[str, Any] = field(default_factory=dict)
    input_given: bool = False
    incomplete: bool = False  # an entry failed to expand (reported): layers are missing

    def where(self, path: KeyPath, at_key: bool = False) -> Location:
        return self.doc.where(path, at_key)


@dataclass
class Item:
    """A direct child of a scope (or of the model, path ""): one node, or one scope."""

    path: str
    local: str  # the name within its parent: a module attribute name
    node: Node | None = None
    scope: Scope | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        if self.node is not None:
            return self.node.inputs
        return self.scope.inputs if self.scope is not None else ()

    @property
    def output(self) -> str:
        if self.node is not None:
            return self.node.name
        return self.scope.output if self.scope is not None else ""


def children(graph: Graph) -> dict[str, list[Item]]:
    """Each scope's direct children in spec order; the model's under ""."""
    out: dict[str, list[Item]] = {"": [], **{path: [] for path in graph.scopes}}
    seen: set[str] = set()
    for name, node in graph.nodes.items():
        if name == INPUT:
            continue
        parent = ""
        for path in node.scope:
            if path not in seen:
                seen.add(path)
                local = path[len(parent) + 1 :] if parent else path
                out[parent].append(Item(path, local, scope=graph.scopes[path]))
            parent = path
        local = name[len(parent) + 1 :] if parent else name
        out[parent].append(Item(name, local, node=node))
    return out
