"""Structure checks with networkx: cycles, layers nothing uses, layers cut off from the input."""

from __future__ import annotations

import networkx as nx

from ..errors import Diagnostics
from ..ir import INPUT, Graph


def check(graph: Graph, diags: Diagnostics) -> bool:
    """Report structural problems and set `graph.order`; False if there is no valid order."""
    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_nodes_from(graph.nodes)
    for node in graph.nodes.values():
        g.add_edges_from((src, node.name) for src in node.inputs if src in graph.nodes)
    position = {name: i for i, name in enumerate(graph.nodes)}

    try:
        # Deterministic (it follows insertion order, which is spec order); displays keep spec
        # order themselves, so inference needs no more than a valid order.
        graph.order = list(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:
        for component in nx.strongly_connected_components(g):
            if len(component) > 1 or g.has_edge(*(2 * [next(iter(component))])):
                _report_cycle(graph, g.subgraph(component), position, diags)
        return False

    live = set(graph.outputs.values())
    for out in graph.outputs.values():
        live |= nx.ancestors(g, out)
    dead = [n for n in graph.nodes if n not in live and n != INPUT]
    dead_set = set(dead)
    for name in dead:
        if not any(s in dead_set for s in g.successors(name)):
            feeding = len(nx.ancestors(g, name) & dead_set)
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
