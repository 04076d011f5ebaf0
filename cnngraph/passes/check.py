"""Structure checks with networkx: cycles, layers nothing uses, layers cut off from the input."""

from __future__ import annotations

import networkx as nx

from ..errors import Diagnostics
from ..ir import INPUT, Graph


def check(graph: Graph, diags: Diagnostics) -> bool:
    """Report structural problems and set `graph.order`; False if there is no valid order."""
    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_nodes_from(graph.nodes)
    nodes = graph.nodes
    g.add_edges_from(
        (src, node.name) for node in nodes.values() for src in node.inputs if src in nodes
    )

    try:
        # Deterministic (it follows insertion order, which is spec order); displays keep spec
        # order themselves, so inference needs no more than a valid order.
        graph.order = list(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:
        position = {name: i for i, name in enumerate(graph.nodes)}
        for component in nx.strongly_connected_components(g):
            if len(component) > 1 or g.has_edge(*(2 * [next(iter(component))])):
                _report_cycle(graph, g.subgraph(component), position, diags)
        return False

    if graph.incomplete:
        # Entries that failed to expand (reported) are missing: the layers around them would
        # look unused or cut off from the input, as knock-on effects of that error.
        return True

    # One walk back from all outputs at once (one per output would be quadratic).
    live: set[str] = set()
    todo = [out for out in graph.outputs.values() if out in g]
    while todo:
        name = todo.pop()
        if name not in live:
            live.add(name)
            todo.extend(g.predecessors(name))
    dead = [n for n in graph.order if n not in live and n != INPUT]
    ends = _dead_ends(g, dead)
    for name in (n for n in graph.nodes if n in ends):
        feeding = ends[name]
        more = f" (nor {feeding} layer(s) feeding only it)" if feeding else ""
        diags.warning(
            "CG404",
            f"the result of '{name}' is never used{more}",
            graph.where(graph.nodes[name].src, at_key=True),
            "use it with `from:`, list it in `outputs:`, or remove it",
        )

    reachable = nx.descendants(g, INPUT) | {INPUT}
    for name in graph.nodes:
        if name not in reachable:
            diags.warning(
                "CG406",
                f"'{name}' does not depend on the model input",
                graph.where(graph.nodes[name].src, at_key=True),
            )
    return True


def _dead_ends(g: nx.DiGraph[str], dead: list[str]) -> dict[str, int]:
    """Each unused layer whose result nothing uses, with the number of unused layers that feed
    it and no other. `dead` is in topological order; one pass back through it, each layer
    remembering at most two of the dead ends it feeds (two means "more than one")."""
    dead_set = set(dead)
    reaches: dict[str, frozenset[str]] = {}
    feeding: dict[str, int] = {}
    for name in reversed(dead):
        found: set[str] = set()
        for successor in g.successors(name):
            if successor in dead_set and len(found) < 2:
                found |= reaches[successor]
        if not found:
            reaches[name] = frozenset({name})
            feeding[name] = 0
        else:
            reaches[name] = frozenset(sorted(found)[:2])
            if len(found) == 1:
                feeding[next(iter(found))] += 1
    return feeding


def _report_cycle(
    graph: Graph, component: nx.DiGraph[str], position: dict[str, int], diags: Diagnostics
) -> None:
    start = min(component, key=position.__getitem__)
    edges = nx.find_cycle(component, source=start)
    path = [edges[0][0], *(edge[1] for edge in edges)]
    diags.error(
        "CG403",
        f"cycle: {' -> '.join(path)}",
        graph.where(graph.nodes[start].src, at_key=True),
        "a layer cannot use its own result; check the `from:` references",
    )
