"""The DOT backend: a compiled Model as a Graphviz diagram, and its rendering (no torch needed).

Each block instance is a cluster; `depth` collapses scopes below it into single nodes; a run of
identical sibling blocks (a repeat) is drawn once, marked `xN`. Residual, concat and gate edges have
their own styles, explained by a legend.
"""

from __future__ import annotations

import functools
import html
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import printable
from ..ir import INPUT, Item, Node, children
from ..ops import Shape
from .dot_source import DotGraph

FORMATS = ("svg", "png", "pdf", "dot")
ROLE_COLORS = {
    "conv": "#d6e6f5",
    "norm": "#ececec",
    "act": "#fdf1c8",
    "pool": "#dcefd6",
    "join": "#ffffff",
    "linear": "#e6dcef",
    "regularize": "#f6d8d8",
    "other": "#f4f4f4",
}
EDGE_STYLES: dict[str, dict[str, str]] = {
    "residual": {"style": "dashed", "color": "#1f6fb4", "penwidth": "1.5"},
    "concat": {"color": "#2b8a3e", "penwidth": "1.3"},
    "gate": {"style": "dotted", "color": "#c92a2a", "penwidth": "1.8"},
}
_HIDDEN = "-"  # a node inside a folded repeat: not drawn, and nothing is drawn to it


class RenderError(Exception):
    """No Graphviz engine is available, or it failed."""


def shape_text(shape: Shape) -> str:
    return "\u00d7".join(str(d) for d in shape)


def count_text(n: int) -> str:
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3g}{unit}"
    return str(n)


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    shape: Shape
    kind: str | None


class _Drawing:
    def __init__(self, model: Any, depth: int | None, rankdir: str) -> None:
        self.model = model
        self.graph = model.graph
        self.depth = depth
        self.tree = children(self.graph)
        self.rows = {row.name: row for row in model.rows(None)}
        self.layers = {layer.name: layer for layer in model.layers}
        self.visible: dict[str, str] = {INPUT: "input"}  # node -> id drawn for it
        self.count = 0
        self.dot = DotGraph(
            _safe_id(self.graph.name),
            {
                "graph": {
                    "rankdir": rankdir,
                    "fontname": "Helvetica",
                    "fontsize": "11",
                    "nodesep": "0.25",
                    "ranksep": "0.32",
                    "labelloc": "t",
                    "label": self._title(),
                },
                "node": {
                    "shape": "box",
                    "style": "rounded,filled",
                    "fontname": "Helvetica",
                    "fontsize": "11",
                    "margin": "0.12,0.05",
                    "color": "#777777",
                },
                "edge": {
                    "fontname": "Helvetica",
                    "fontsize": "9",
                    "arrowsize": "0.6",
                    "color": "#555555",
                    "fontcolor": "#555555",
                },
            },
        )

    def _title(self) -> str:
        m = self.model
        return (
            f"<<b>{_esc(self.graph.name)}</b>  {count_text(m.params)} params, "
            f"{count_text(m.macs)} MACs>"
        )

    def _id(self) -> str:
        self.count += 1
        return f"n{self.count}"

    def draw(self) -> str:
        shape = self.graph.input_shape
        self.dot.node(
            "input", f"<<b>input</b><br/>{shape_text(shape)}>", shape="oval", fillcolor="#ffffff"
        )
        self._body(self.dot, "", 0)
        edges = self._edges()
        self._keep_branch_order()
        for edge in edges:
            attrs = dict(EDGE_STYLES.get(edge.kind or "", {}))
            self.dot.edge(edge.source, edge.target, label=" " + shape_text(edge.shape), **attrs)
        for label, ref in self.graph.outputs.items():
            out = f"out_{self._id()}"
            self.dot.node(
                out,
                f"<<b>{_esc(label)}</b><br/>{shape_text(self.layers[ref].shape)}>",
                shape="oval",
                fillcolor="#ffffff",
            )
            self.dot.edge(self.visible[ref], out)
        self._legend({e.kind for e in edges if e.kind})
        return self.dot.source

    # clusters and nodes
    def _body(self, g: DotGraph, path: str, level: int) -> None:
        items = self.tree[path]
        runs = self._runs(items)
        skip: set[int] = set()
        for index, item in enumerate(items):
            if index in skip:
                continue
            if item.node is not None:
                self._node(g, item.node)
                continue
            run = runs.get(index, [item])
            self._scope(g, item, level + 1, run)
            representative = self.visible.get(item.output, _HIDDEN)
            for member in run[1:]:  # folded: only their result stands, as the first's
                for name in self._nodes_under(member.path):
                    self.visible[name] = representative if name == member.output else _HIDDEN
            skip.update(range(index + 1, index + len(run)))

    def _node(self, g: DotGraph, node: Node) -> None:
        info = self.layers.get(node.name)
        identity = (
            info is not None and info.op is not None and info.op.is_identity(info.input_shapes)
        )
        if info is None or not info.active or identity:  # its input passes on, undrawn
            self.visible[node.name] = self.visible.get(node.inputs[0], _HIDDEN)
            return
        ident = self._id()
        self.visible[node.name] = ident
        op = info.op
        role = op.role if op is not None else "other"
        label = op.label(info.input_shapes) if op is not None else node.kind
        local = node.name.rsplit(".", 1)[-1]
        details = shape_text(info.shape) + (
            f" \u00b7 {count_text(info.params)}" if info.params else ""
        )
        text = (
            f'<<b>{_esc(local)}</b><br/><font point-size="10">{_esc(label)}</font>'
            f'<br/><font point-size="9" color="#555555">{_esc(details)}</font>>'
        )
        if op is not None and op.symbol is not None:
            g.node(
                ident,
                f"<<b>{_esc(op.symbol)}</b>>",
                shape="circle",
                fillcolor="#ffffff",
                width="0.3",
                tooltip=node.name,
            )
            return
        g.node(
            ident, text, fillcolor=ROLE_COLORS.get(role, ROLE_COLORS["other"]), tooltip=node.name
        )

    def _scope(self, g: DotGraph, item: Item, level: int, run: list[Item]) -> None:
        scope = item.scope
        if scope is None:
            return
        row = self.rows.get(scope.path)
        params = count_text(row.params) if row else "0"
        name = item.local if len(run) == 1 else f"{item.local}\u2013{run[-1].local}"
        times = f" \u00d7{len(run)}" if len(run) > 1 else ""
        if self.depth is not None and level >= self.depth:  # as in the summary
            ident = self._id()
            what = (
                scope.label
                if scope.kind != "branch"
                else f"{len(self._nodes_under(scope.path))} layers"
            )
            shape = shape_text(row.shape) if row else ""
            g.node(
                ident,
                f'<<b>{_esc(name)}</b>{times}<br/><font point-size="10">'
                f'{_esc(what)}</font><br/><font point-size="9" color="#555555">'
                f"{_esc(shape)} \u00b7 {params}</font>>",
                fillcolor="#eef3f8",
                style="rounded,filled,bold",
                tooltip=scope.path,
            )
            for node in self._nodes_under(scope.path):
                self.visible[node] = ident
            return
        with g.subgraph(f"cluster_{self._id()}") as cluster:
            kind = "" if scope.kind == "branch" else f" {_esc(scope.label)}"
            cluster.attr(
                label=f"<<b>{_esc(name)}</b>{kind}{times} \u00b7 {params}>",
                style="rounded,dashed",
                color="#9aa5b1",
                fontsize="10",
                labeljust="l",
                tooltip=scope.path,
            )
            self._body(cluster, scope.path, level)

    def _runs(self, items: list[Item]) -> dict[int, list[Item]]:
        """Consecutive instances alike in block, shapes and parameter count, each fed by the
        one before (a sequence, not siblings side by side): drawn once."""

        def key(item: Item) -> tuple[Any, ...] | None:
            if item.scope is None or item.scope.kind != "block":
                return None
            row = self.rows.get(item.path)
            source = self.layers.get(item.inputs[0]) if item.inputs else None
            shape_in = source.shape if source else self.graph.input_shape
            return (
                item.scope.label,
                shape_in,
                row.shape if row else None,
                row.params if row else None,
                self._structure(item.path),
            )

        runs: dict[int, list[Item]] = {}
        start = 0
        while start < len(items):
            end = start + 1
            first = key(items[start])
            while (
                first is not None
                and end < len(items)
                and items[end].inputs == (items[end - 1].output,)
                and key(items[end]) == first
            ):
                end += 1
            if end - start > 1:
                runs[start] = items[start:end]
            start = end
        return runs

    def _keep_branch_order(self) -> None:
        """Parallel siblings (branches, a shortcut beside its body) side by side in spec order:
        Graphviz orders a rank by its own heuristics (Inception's single-conv branch came out
        last), but keeps an invisible flat edge between two nodes of one rank pointing left to
        right. Siblings fed alike need not be written next to each other (Inception-v3's
        paths written one after the other, each reading the block input); siblings in sequence
        are fed differently and get none."""
        for items in self.tree.values():
            last: dict[frozenset[str], str] = {}  # the entry last seen fed by these sources
            for entry in map(self._entry, items):
                if entry is None:
                    continue
                node, sources = entry
                left = last.get(sources)
                if left is not None and left != node:
                    # minlen 0: the same rank when fed alike, so it moves nothing up or down
                    self.dot.edge(left, node, style="invis", minlen="0")
                last[sources] = node

    def _entry(self, item: Item) -> tuple[str, frozenset[str]] | None:
        """An item's first drawn node and the drawn nodes feeding it."""
        names = [item.node.name] if item.node is not None else self._nodes_under(item.path)
        for name in names:
            ident = self.visible.get(name, _HIDDEN)
            sources = frozenset(
                self.visible.get(ref, _HIDDEN) for ref in self.graph.nodes[name].inputs
            )
            if ident != _HIDDEN and ident not in sources:
                return ident, sources
        return None

    def _nodes_under(self, path: str) -> list[str]:
        return self._members.get(path, [])

    @functools.cached_property
    def _members(self) -> dict[str, list[str]]:
        """The nodes inside each scope, in spec order (found once, not per scope)."""
        out: dict[str, list[str]] = {}
        for name, node in self.graph.nodes.items():
            for path in node.scope:
                out.setdefault(path, []).append(name)
        return out

    def _structure(self, path: str) -> tuple[str, ...]:
        """What an instance computes, layer by layer: instances fold into one drawing only if
        these agree (a 7x1 and a 1x7 conv have the same shapes and parameter count)."""
        out = []
        for name in self._nodes_under(path):
            info = self.layers.get(name)
            op = info.op if info else None
            label = op.label(info.input_shapes) if op is not None and info is not None else ""
            where = name[len(path) + 1 :]
            out.append(
                f"{where}:{label}:{info.shape if info else ''}:{info.active if info else ''}"
            )
        return tuple(out)

    # edges
    def _edges(self) -> list[_Edge]:
        edges: dict[tuple[str, str], _Edge] = {}
        for name, node in self.graph.nodes.items():
            target = self.visible.get(name, _HIDDEN)
            info = self.layers.get(name)
            if name == INPUT or target == _HIDDEN or info is None or not info.active:
                continue  # an inactive node (a `when` that failed) stands for its first input
            used = info.op.runtime_inputs if info.op is not None else None
            for position, ref in enumerate(node.inputs[:used]):
                source = self.visible.get(ref, _HIDDEN)
                if source in (_HIDDEN, target) or (source, target) in edges:
                    continue
                # An edge into a folded block keeps the style of the connection it stands for:
                # a U-Net's skip concatenations still stand out at depth 1.
                kind = info.op.edge_kind(position) if info.op is not None else None
                shape = self.layers[ref].shape if ref in self.layers else self.graph.input_shape
                edges[(source, target)] = _Edge(source, target, shape, kind)
        return list(edges.values())

    def _legend(self, kinds: set[str]) -> None:
        if not kinds:
            return
        with self.dot.subgraph("cluster_legend") as legend:
            legend.attr(label="edges", style="rounded,dashed", color="#bbbbbb", fontsize="9")
            for kind in sorted(kinds):
                a, b = f"legend_{kind}_a", f"legend_{kind}_b"
                legend.node(a, "", shape="point", width="0.05")
                legend.node(b, "", shape="point", width="0.05")
                legend.edge(a, b, label=f" {kind}", **EDGE_STYLES[kind])


def to_dot(model: Any, depth: int | None = None, rankdir: str = "TB") -> str:
    """DOT source of the model's diagram."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be TB, LR, BT or RL, not {rankdir!r}")
    return _Drawing(model, depth, rankdir).draw()


def engine() -> str | None:
    """The Graphviz `dot` to render with: the system's, else the graphviz-pure package's."""
    found = shutil.which("dot") or shutil.which("graphviz-pure")
    if found:
        return found
    beside = Path(sys.executable).parent / "graphviz-pure"  # a venv not on PATH
    return str(beside) if beside.exists() else None


def render(source: str, fmt: str) -> bytes:
    """Render DOT source to svg, png or pdf bytes."""
    if fmt == "dot":
        return source.encode()
    program = engine()
    if program is None:
        raise RenderError(
            "no Graphviz found: install it (apt install graphviz, brew install "
            "graphviz) or `pip install graphviz-pure`"
        )
    if fmt == "pdf" and Path(program).name == "graphviz-pure":
        # graphviz-pure draws svg and png only; say so before it fails less clearly
        raise RenderError(
            "pdf needs Graphviz's own dot (apt install graphviz, brew install graphviz); "
            "graphviz-pure writes svg and png"
        )
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=source.encode(),
            capture_output=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderError(f"{program} failed: {exc}") from None
    if done.returncode != 0 or not done.stdout:
        raise RenderError(f"{program} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _esc(text: object) -> str:
    """Text for an HTML-like Graphviz label: markup characters escaped, control characters
    shown as escapes (dot refuses them)."""
    return html.escape(printable(str(text)), quote=True)


def _safe_id(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text) or "model"
