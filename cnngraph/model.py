"""The compile pipeline (read, expand, validate, check, infer) and the Model it produces."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import html
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from . import expr, source
from .errors import Diagnostic, Diagnostics, SpecError
from .expand import expand
from .ir import INPUT, Graph, Scope
from .ops import Op, Shape
from .passes.check import check
from .passes.definitions import check_definitions
from .passes.infer import LayerInfo, ShapeInference
from .passes.segments import SharedSizes
from .passes.sizes import AxisRule, describe, input_size_rules
from .passes.validate import validate


def load(
    spec: str | Path | Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    input_shape: Shape | None = None,
    name: str | None = None,
) -> Model:
    """Compile a spec (a path, YAML/JSON text, or a mapping) into a Model.

    `params` overrides model-level params; `input_shape` overrides the spec's input. Raises
    SpecError, whose `.diagnostics` lists every problem found.
    """
    with without_gc(), expr.work_budget():
        return _load(source.read(spec, name), params, input_shape, {}, None)


class Compiler:
    """Compiles one spec again and again with different params (a sweep): the file is read
    once, and what does not depend on the params is kept between compiles (the op built for
    each set of fields, the value of each expression for each set of inputs, the sizes a
    chain of those ops maps heights and widths to)."""

    def __init__(self, spec: str | Path | Mapping[str, Any], name: str | None = None) -> None:
        self.document = source.read(spec, name)
        self._ops: dict[tuple[str, str], Op] = {}
        self._results: dict[tuple[Any, ...], tuple[Any, int]] = {}
        self._sizes = SharedSizes()  # keyed by the identities of the ops above

    def load(
        self, params: Mapping[str, Any] | None = None, input_shape: Shape | None = None
    ) -> Model:
        kept = (len(self._results), len(self._ops), len(self._sizes.lookups))
        if max(kept) > _MAX_KEPT:  # a long random sweep would grow them without end
            self._results.clear()
            self._ops.clear()
            self._sizes.clear()  # together with the ops: their identities are its keys
        with without_gc(), expr.work_budget(self._results):
            return _load(self.document, params, input_shape, self._ops, self._sizes)


_MAX_KEPT = 200_000


@contextlib.contextmanager
def without_gc() -> Iterator[None]:
    """Compiling and summarising make many objects and no cycles worth collecting while they
    run; Python's collector would walk the growing heap again and again (a 40,000-line file
    parsed 3x slower, and doubling its size tripled the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(
    doc: source.Document,
    params: Mapping[str, Any] | None,
    input_shape: Shape | None,
    ops: dict[tuple[str, str], Op],
    sizes: SharedSizes | None,
) -> Model:
    diags = Diagnostics()
    graph = expand(doc, diags, params, tuple(input_shape) if input_shape else None)
    if graph is None:
        raise SpecError(diags.items())
    validate(graph, diags, ops)
    ordered = check(graph, diags)
    layers: dict[str, LayerInfo] = {}
    inference = ShapeInference(graph, sizes)  # after check: it walks in `graph.order`
    if ordered and graph.input_shape:
        layers = inference.run(graph.input_shape, diags)
        # (not for CG508: sizes past the limits are too large at any input)
        if any(d.code.startswith("CG5") and d.code != "CG508" for d in diags.items()):
            _note_valid_sizes(inference, graph.input_shape, diags)
    if graph.definitions is not None:  # last: what the expansion reported is not repeated
        check_definitions(graph.definitions, doc, diags)
    diags.raise_if_errors()
    return Model(graph, layers, inference, diags.items())


def _note_valid_sizes(inference: ShapeInference, shape: Shape, diags: Diagnostics) -> None:
    """When a shape error depends on the input size, say which sizes would compile."""
    rules = input_size_rules(inference, shape)
    if rules is not None:
        diags.annotate_first("CG5", f"the model compiles for input sizes {describe(rules)}")


class SummaryText(str):
    """The summary table: prints, and displays in a notebook, as itself."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


class Row(NamedTuple):
    """One line of a summary: a layer, or a block/repeat/branch with its totals (a tuple: a
    deep network's summary has tens of thousands)."""

    name: str
    kind: str  # "layer", "block", "repeat" or "branch"
    op: str
    depth: int
    shape: Shape
    params: int
    macs: int
    inputs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "op": self.op,
            "depth": self.depth,
            "output_shape": list(self.shape),
            "params": self.params,
            "macs": self.macs,
        }
        if self.kind == "layer":
            out["inputs"] = list(self.inputs)
        return out


class Model:
    """A compiled spec: shapes, parameter counts and MACs of every layer and of the whole."""

    def __init__(
        self,
        graph: Graph,
        layers: dict[str, LayerInfo],
        inference: ShapeInference,
        diagnostics: list[Diagnostic],
    ) -> None:
        self.graph = graph
        self._layers = layers
        self._inference = inference
        self.warnings = [d for d in diagnostics if not d.is_error]

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def input_shape(self) -> Shape:
        return self.graph.input_shape

    @property
    def layers(self) -> list[LayerInfo]:
        """Every node but the input, in spec order."""
        return list(self._ordered_layers)

    @cached_property
    def _ordered_layers(self) -> tuple[LayerInfo, ...]:
        return tuple(self._layers[n] for n in self.graph.nodes if n != INPUT and n in self._layers)

    def layer(self, name: str) -> LayerInfo:
        return self._layers[name]

    @cached_property
    def params(self) -> int:
        return sum(li.params for li in self._ordered_layers)

    @cached_property
    def macs(self) -> int:
        """Multiply-accumulates of one inference, batch 1: where the model returns one output in
        eval mode (`eval_output`), those of the layers that output needs; heads that run in
        training alone count in `training_macs`."""
        label = self.graph.eval_output
        if label is None:
            return self.training_macs
        needed = self.upstream(self.graph.outputs[label])
        return sum(li.macs for li in self._ordered_layers if li.name in needed)

    @cached_property
    def training_macs(self) -> int:
        """Multiply-accumulates of a training step's forward, batch 1: every output computed."""
        return sum(li.macs for li in self._ordered_layers)

    def upstream(self, name: str) -> set[str]:
        """A node and every node it reads (through inputs: what a field reads through
        in_channels, its block's input, is upstream too)."""
        seen = {name}
        stack = [name]
        while stack:
            node = self.graph.nodes.get(stack.pop())
            for read in node.inputs if node is not None else ():
                if read not in seen:
                    seen.add(read)
                    stack.append(read)
        return seen

    @property
    def outputs(self) -> dict[str, Shape]:
        return {label: self._layers[node].shape for label, node in self.graph.outputs.items()}

    @property
    def output_shape(self) -> Shape | dict[str, Shape]:
        """The output's shape (per sample), or a mapping when the model has several outputs."""
        outputs = self.outputs
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    @cached_property
    def input_size_rules(self) -> tuple[AxisRule, AxisRule] | None:
        """Which heights and widths compile for inference (None for inputs without spatial
        dims): those the eval-mode output takes, where the model has one (`eval_output`)."""
        with without_gc():
            return input_size_rules(self._eval_inference, self.input_shape)

    @cached_property
    def training_input_size_rules(self) -> tuple[AxisRule, AxisRule] | None:
        """Which heights and widths compile with every output computed, as in training."""
        if self._eval_inference is self._inference:
            return self.input_size_rules
        with without_gc():
            return input_size_rules(self._inference, self.input_shape)

    def accepts(self, height: int, width: int) -> bool:
        """Whether the model compiles for an input of this height and width (for inference)."""
        shape = (self.input_shape[0], height, width)
        return self._eval_inference.compiles(shape)

    @cached_property
    def _eval_inference(self) -> ShapeInference:
        """Shape inference over the layers the eval-mode output needs (all, without one)."""
        label = self.graph.eval_output
        if label is None:
            return self._inference
        needed = self.upstream(self.graph.outputs[label])
        graph = dataclasses.replace(
            self.graph,
            nodes={name: node for name, node in self.graph.nodes.items() if name in needed},
            order=[name for name in self.graph.order if name in needed],
            outputs={label: self.graph.outputs[label]},
        )
        inference = ShapeInference(graph)
        with without_gc():
            inference.run(self.input_shape, Diagnostics())  # compiled whole: nothing to report
        return inference

    def rows(self, depth: int | None = None) -> list[Row]:
        """Layers and scopes up to `depth` (None: all), in spec order, with scope totals."""
        nodes = self.graph.nodes
        totals: dict[str, list[int]] = {}
        for info in self._ordered_layers:
            for path in nodes[info.name].scope:
                acc = totals.setdefault(path, [0, 0])
                acc[0] += info.params
                acc[1] += info.macs
        rows: list[Row] = []
        seen: set[str] = set()
        labels: dict[tuple[int, tuple[Shape, ...]], str] = {}  # layers alike share ops
        for info in self._ordered_layers:
            scope = nodes[info.name].scope
            for level, path in enumerate(scope, start=1):
                if path not in seen and (depth is None or level <= depth):
                    seen.add(path)
                    rows.append(self._scope_row(self.graph.scopes[path], level, totals[path]))
            level = len(scope) + 1
            if depth is None or level <= depth:
                if info.op is not None and info.active:
                    key = (id(info.op), info.input_shapes)
                    op = labels.get(key) or labels.setdefault(key, info.op.label(info.input_shapes))
                else:
                    op = f"{info.kind} (skipped)"
                row = (info.name, "layer", op, level, info.shape, info.params, info.macs)
                rows.append(Row(*row, info.inputs))
        return rows

    def _scope_row(self, scope: Scope, level: int, total: list[int]) -> Row:
        shape = self._layers[scope.output].shape if scope.output in self._layers else ()
        return Row(scope.path, scope.kind, scope.label, level, shape, total[0], total[1])

    def summary(self, depth: int | None = 3) -> SummaryText:
        """A torchinfo-style table: layer, op, output shape, params, MACs; then totals. A str
        that a REPL or a notebook shows as the table, not as a quoted string."""
        from .backends.summary import render_text

        with without_gc():
            return SummaryText(render_text(self, depth))

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        from .backends.summary import render_dict

        with without_gc():
            return render_dict(self, depth)

    def to_dot(self, depth: int | None = None, rankdir: str = "TB") -> str:
        """Graphviz DOT source of the model's diagram; `depth` folds deeper blocks."""
        from .backends.dot import to_dot

        return to_dot(self, depth, rankdir)

    def _repr_svg_(self) -> str | None:
        """The diagram, for notebooks (None when no Graphviz engine is installed)."""
        from .backends.dot import RenderError, render

        try:
            return render(self.to_dot(depth=2), "svg").decode()
        except RenderError:
            return None

    def torch_source(self, spec_file: str | None = None) -> str:
        """Standalone torch source for this model: one nn.Module class per block definition."""
        from .backends.pytorch import generate

        return generate(self, spec_file or self.graph.doc.file)

    def to_module(self) -> Any:
        """The model as a torch.nn.Module (torch needed), built from the generated source."""
        from .backends.pytorch import build_module

        return build_module(self)

    def __repr__(self) -> str:
        return (
            f"<cnngraph.Model {self.name!r}: {self.params:,} params, {self.macs:,} MACs, "
            f"output {self.output_shape}>"
        )
