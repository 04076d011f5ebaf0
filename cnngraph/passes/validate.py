"""Validation: each node's fields against its op's pydantic model."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .. import pydantic_errors
from ..errors import Diagnostics, Location
from ..ir import INPUT, Graph, Node
from ..ops import OPS, Op
from ..source import KeyPath


def validate(
    graph: Graph, diags: Diagnostics, built: dict[tuple[str, str], Op] | None = None
) -> None:
    """Build the op of every node whose fields are final; the rest wait for shape inference.
    Layers written alike share one op: a deep network repeats a few layers thousands of times,
    and the size scans recognise repeated structure by op identity."""
    built = {} if built is None else built  # kept between compiles by a Compiler
    # each fields dict's text, or None while it cannot be built: replayed layers share theirs
    texts: dict[int, str | None] = {}
    for node in graph.nodes.values():
        if node.kind == INPUT:
            continue
        if id(node.fields) not in texts:
            final = not node.broken and not node.pending
            texts[id(node.fields)] = repr(node.fields) if final else None
        text = texts[id(node.fields)]
        if text is not None:
            key = (node.kind, text)
            op = built.get(key)
            if op is None:
                op = build_op(graph, node, node.fields, diags)
                if op is not None:
                    built[key] = op
            else:
                _check_init(graph, node, op, diags)
            node.op = op


def build_op(graph: Graph, node: Node, fields: dict[str, Any], diags: Diagnostics) -> Op | None:
    cls = OPS[node.kind]
    try:
        op = cls.model_validate(fields)
    except ValidationError as exc:

        def where(path: KeyPath, at_key: bool) -> Location:
            if not path:
                return graph.where(node.src)
            return graph.where((*node.field_path(str(path[0])), *path[1:]), at_key)

        pydantic_errors.report(
            exc.errors(),
            fields,
            (),
            graph.doc,
            diags,
            f"{node.name} ({node.kind})",
            lambda _: list(cls.model_fields),
            where,
        )
        return None
    _check_init(graph, node, op, diags)
    return op


def _check_init(graph: Graph, node: Node, op: Op, diags: Diagnostics) -> None:
    if node.init is not None and not op.has_weights():
        diags.error(
            "CG202",
            f"{node.name}: `init` sets weights, and this {node.kind} has none",
            graph.where((*node.src, "init"), at_key=True),
            "remove `init`, or give the layer weights (affine: true)",
        )
