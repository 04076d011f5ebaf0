"""Fallback generator: torch source from one compiled expansion (a snapshot of its values).

Used only where the definition generator (definitions.py) cannot yet translate a spec; the
file's header says so. Constructor arguments here are those the instances need, not the spec's
params, so the model class takes no arguments beyond those proven equal for every instance.

Every instance of a block shares its class. Where instances differ (widths, strides, whether a
shortcut is needed), the class takes constructor arguments; each value is written, in order of
preference, as the spec's own expression over the block's params, as `in_channels`, as a param
whose values match, as a literal when constant, or as a new argument. Every choice is checked
against the value of every instance, so the code builds exactly the compiled model.
"""

from __future__ import annotations

import ast
import keyword
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import networkx as nx

from ...expr import ExprError, Pending, evaluate, source_of
from ...ir import INPUT, Item, Node, Scope, children
from ...ops.base import Call, literal
from ...passes.infer import LayerInfo
from ...source import lookup
from ...spec import Init
from .runtime import (
    MAX_LINE,
    STOCHASTIC_DEPTH,
    camel,
    class_argument,
    header,
    helper_sources,
    init_lines,
    rule_set_names,
    sanitize,
)
from .writer import double_quoted, split_arguments

_camel, _sanitize, _init_lines = camel, sanitize, init_lines


class GenerationError(Exception):
    """The compiled model has a shape the generated code cannot express."""


def generate(model: Any, spec_file: str, reason: str) -> str:
    """Python source of a torch module for `model`, checked to parse."""
    source = double_quoted(Generator(model, spec_file, reason).source())
    ast.parse(source)  # names and strings were validated; this proves the text is Python
    return source


@dataclass
class Leaf:
    """One constructor argument across a class's instances."""

    values: list[Any]  # per instance; None where the enclosing module is unused
    raw: Any = None  # what the spec wrote for it, if it comes from a spec field
    name: str = "value"  # a readable name for a new argument
    size: bool = False  # a positional channel or feature count


@dataclass
class ClassDef:
    name: str
    kind: str  # "root", "block" or "scope"
    label: str
    paths: list[str]  # the instances ("" for the root)
    params: list[tuple[str, str, list[Any], Any]] = field(default_factory=list)
    # (name, type hint, value per instance, default or _UNSET)
    lines_init: list[str] = field(default_factory=list)
    lines_forward: list[str] = field(default_factory=list)
    signature: str = ""
    returns: str = "torch.Tensor"
    base: str = "nn.Module"
    methods: list[str] = field(default_factory=list)  # further methods, as source
    out_param: str | None = None  # an argument equal to the output channels everywhere

    def value(self, name: str, path: str) -> Any:
        """The value argument `name` takes for the instance at `path`."""
        index = self.paths.index(path)
        return next(values[index] for pname, _, values, _ in self.params if pname == name)


_UNSET = object()


def _same(a: Any, b: Any) -> bool:
    """Equality that treats a pair of equal numbers as that number, and lists as tuples."""

    def norm(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            v = tuple(norm(x) for x in v)
            if len(v) == 2 and v[0] == v[1] and not isinstance(v[0], tuple):
                return v[0]
        return v

    na, nb = norm(a), norm(b)
    return bool(na == nb and type(na) is type(nb))


def _type_hint(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    return _hint(present) + (" | None" if len(present) < len(values) else "")


def _hint(values: Sequence[Any]) -> str:
    """The narrowest hint every value fits; tables (tuples of rows) are hinted element-wise."""
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return "bool"
    if kinds and kinds <= {int}:
        return "int"
    if kinds and kinds <= {int, float}:
        return "float"
    if kinds == {str}:
        return "str"
    if kinds and kinds <= {tuple, list}:
        elements = [x for v in values for x in v]
        return f"tuple[{_hint(elements) if elements else 'int'}, ...]"
    return "object"


class _Expression(ast.NodeTransformer):
    """A spec expression as Python source for the generated module."""

    MATH: ClassVar[set[str]] = {"ceil", "floor", "log", "sqrt"}
    CONSTANTS: ClassVar[dict[str, Any]] = {"true": True, "false": False, "null": None}

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.needs: set[str] = set()

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.CONSTANTS:
            return ast.copy_location(ast.Constant(self.CONSTANTS[node.id]), node)
        if node.id in self.MATH:
            self.needs.add("math")
            return ast.copy_location(
                ast.Attribute(ast.Name("math", ast.Load()), node.id, ast.Load()), node
            )
        if node.id in ("make_divisible", "float32"):
            self.needs.add(node.id)
        elif node.id not in {"abs", "float", "int", "len", "max", "min", "round", "sum"}:
            self.names.add(node.id)
        return node


class Generator:
    def __init__(self, model: Any, spec_file: str, reason: str) -> None:
        self.reason = reason
        self.model = model
        self.graph = model.graph
        self.spec_file = spec_file
        self.layers: dict[str, LayerInfo] = {li.name: li for li in model.layers}
        self.needs: set[str] = set()
        self.children = children(self.graph)
        self.classes: list[ClassDef] = []
        self.class_of: dict[str, ClassDef] = {}  # instance path -> its class
        self.class_names: set[str] = set()
        self.identity: dict[str, str] = {}  # scope path -> its class's identity

    # ---- the module tree -------------------------------------------------------------------

    def _info(self, name: str) -> LayerInfo:
        return self.layers[name]

    def _ends(self, path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The tensors entering and leaving a scope, or the model when `path` is ""."""
        scope = self.graph.scopes.get(path)
        if scope is None:
            return (INPUT,), tuple(self.graph.outputs.values())
        return scope.inputs, (scope.output,)

    def _is_chain(self, path: str) -> bool:
        """Whether a scope is a plain sequence of modules: then it is an nn.Sequential."""
        inputs, outputs = self._ends(path)
        items = self.children[path]
        if len(inputs) != 1 or len(outputs) != 1 or not items:
            return False
        previous = inputs[0]
        for item in items:
            if item.inputs != (previous,):
                return False
            if item.node is not None:
                info = self._info(item.node.name)
                if (
                    not info.active
                    or info.op is None
                    or info.op.torch_call(info.input_shapes) is None
                ):
                    return False
            previous = item.output
        return previous == outputs[0]

    def _module_kind(self, path: str) -> str:
        scope = self.graph.scopes[path]
        if scope.kind == "block" and scope.label != "sequence":
            return "class"
        # nn.Sequential numbers its layers: named ones (`conv0`, `denselayer1`) need a class
        numbered = all(item.local.isdigit() for item in self.children[path])
        return "sequential" if numbered and self._is_chain(path) else "class"

    # ---- generation ------------------------------------------------------------------------

    def source(self) -> str:
        self._classes_bottom_up()
        shape = list(self.graph.input_shape)
        summary = f"`{_sanitize(self.graph.name)}`: input {shape}, {self.model.params:,} parameters"
        root = self._make_class(summary, [""], "root", _camel(self.graph.name))
        body = [cls for cls in self.classes if cls is not root] + [root]
        return self._module_text(body, root)

    def _classes_bottom_up(self) -> None:
        """One class per block definition and structure, created children first."""
        deepest_first = sorted(self.graph.scopes, key=lambda p: -p.count("."))
        for path in deepest_first:  # a parent's identity names its children's
            if self._module_kind(path) == "class":
                self.identity[path] = f"{self._class_key(path)}|{self._signature(path)}"
        groups: dict[str, list[str]] = {}
        for path in self.graph.scopes:  # spec order: classes are named in reading order
            if path in self.identity:
                groups.setdefault(self.identity[path], []).append(path)
        names = {
            ident: self._class_name(self._class_key(paths[0])) for ident, paths in groups.items()
        }
        pending = dict(groups)
        while pending:
            for ident, paths in list(pending.items()):
                inner = {
                    self.identity[p]
                    for path in paths
                    for p in self.graph.scopes
                    if p.startswith(path + ".") and p in self.identity
                }
                if inner & set(pending) - {ident}:
                    continue  # a class it instantiates is not made yet
                scope = self.graph.scopes[paths[0]]
                kind = "block" if scope.kind == "block" and scope.label != "sequence" else "scope"
                self._make_class(self._class_key(paths[0]), paths, kind, names[ident])
                del pending[ident]

    def _class_key(self, path: str) -> str:
        scope = self.graph.scopes[path]
        if scope.kind == "block" and scope.label != "sequence":
            return str(scope.label)
        # A sequence or repeat inside a block instance is keyed by the block's definition
        # (`bottleneck.f`), so the instances of the block can share its class.
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            owner = self.graph.scopes.get(".".join(parts[:cut]))
            if owner is not None and owner.kind == "block" and owner.label != "sequence":
                return ".".join([owner.label, *parts[cut:]])
        return path

    def _class_name(self, key: str) -> str:
        base = _camel(key)
        name, n = base, 2
        while name in self.class_names or name == _camel(self.graph.name):
            name, n = f"{base}{n}", n + 1
        self.class_names.add(name)
        return name

    def _signature(self, path: str) -> str:
        """The structure of a module, values left out: instances with equal signatures share
        a class."""
        parts = []
        for item in self.children[path]:
            inputs = ",".join(self._local_ref(path, ref) for ref in item.inputs)
            parts.append(f"{item.local}<{inputs}>{self._item_signature(item)}")
        return ";".join(parts)

    def _item_signature(self, item: Item) -> str:
        if item.node is not None:
            info = self._info(item.node.name)
            made = info.op.torch_call(info.input_shapes) if info.op else None
            return f"{item.node.kind}:{_call_shape(made)}"
        path = item.path
        if self._module_kind(path) == "sequential":
            return "seq[" + ",".join(self._item_signature(c) for c in self.children[path]) + "]"
        return "class:" + self.identity[path]

    def _local_ref(self, path: str, ref: str) -> str:
        prefix = path + "." if path else ""
        for item in self.children[path]:
            if item.output == ref:
                return item.local
        scope = self.graph.scopes.get(path)
        inputs = scope.inputs if scope else (INPUT,)
        if ref in inputs:
            return f"#{inputs.index(ref)}"
        if ref.startswith(prefix):
            raise GenerationError(
                f"'{ref}' is used from outside the block or sequence that computes it; "
                "refer to the block's result instead"
            )
        raise GenerationError(f"'{ref}' is not visible in '{path or 'the model'}'")

    # ---- one class -------------------------------------------------------------------------

    def _make_class(self, key: str, paths: list[str], kind: str, name: str) -> ClassDef:
        cls = ClassDef(name, kind, key, paths)
        context = _Context(self, cls)
        template = paths[0]
        items = self.children[template]
        if all(i.local.isdigit() for i in items) and self._is_chain(template):
            cls.base = "nn.Sequential"  # numbered layers in a chain: as torchvision writes them
            context.sequential_init(items)
        else:
            for item in self._construction_order(items):
                context.init_item(item)
            context.forward()
        cls.params = context.class_params()
        if kind == "root":
            self._reset_weights(cls)
        else:
            cls.out_param = self._output_param(cls)
        self.classes.append(cls)
        for path in paths:
            self.class_of[path] = cls
        return cls

    def _output_param(self, cls: ClassDef) -> str | None:
        """The argument that is the output's channel count in every instance, if one is:
        a caller writes the next layer's input channels with it."""
        outputs = [self.layers.get(self.graph.scopes[path].output) for path in cls.paths]
        channels = [info.shape[0] if info and info.shape else None for info in outputs]
        for name, _hint, values, _default in cls.params:
            if all(type(v) is int and v == c for v, c in zip(values, channels, strict=True)):
                return name
        return None

    def _construction_order(self, items: list[Item]) -> list[Item]:
        """Submodules in the order they are created: the order of the computation, except that
        a projection comes first when its block writes `residual:` before its layers.

        The order is torch's random-number order, so it decides the initial weights a seed
        gives: torchvision's RegNet builds `proj` before `f`, its ResNets `downsample` last.
        """
        first = []
        for item in items:
            if item.node is not None and item.node.kind == "projection":
                block = lookup(self.graph.doc.data, item.node.src[:-1])
                keys = list(block) if isinstance(block, dict) else []
                body = next((k for k in keys if k in ("layers", "branches")), None)
                if body and "residual" in keys and keys.index("residual") < keys.index(body):
                    first.append(item)
        return first + [item for item in items if all(item is not f for f in first)]

    def _reset_weights(self, cls: ClassDef) -> None:
        """The spec's initial weights, in module order: each layer's own rule, else its kind's."""
        torch_class: dict[str, str] = {}
        own: dict[Init, tuple[list[str], set[str]]] = {}
        for info in self.layers.values():
            made = info.op.torch_call(info.input_shapes) if info.op else None
            if made is not None:
                torch_class.setdefault(info.kind, made.func)
            node = self.graph.nodes[info.name]
            if node.init is not None and made is not None and _init_lines(node.init):
                names, classes = own.setdefault(node.init, ([], set()))
                names.append(info.name)
                classes.add(made.func)
        by_rule: dict[Init, list[str]] = {}
        for kind, rule in self.graph.init.items():
            # torch's own init is what construction already did
            if kind in torch_class and not rule.is_default and _init_lines(rule):
                by_rule.setdefault(rule, []).append(torch_class[kind])
        if not by_rule and not own:
            return
        if any("math." in line for rule in [*by_rule, *own] for line in _init_lines(rule)):
            self.needs.add("math")
        lines = [
            "def reset_weights(self) -> None:",
            '    """Initial weights as the spec asks; torch\'s defaults elsewhere."""',
        ]
        branches = []
        for name, (rule, (layers, classes)) in zip(
            rule_set_names(list(own)), own.items(), strict=True
        ):
            lines.append(f"    {name} = {{id(self.get_submodule(n)) for n in {tuple(layers)!r}}}")
            branches.append(
                (f"id(m) in {name} and isinstance(m, {class_argument(sorted(classes))})", rule)
            )
        branches += [
            (f"isinstance(m, {class_argument(classes)})", rule) for rule, classes in by_rule.items()
        ]
        lines.append("    for m in self.modules():")
        for index, (condition, rule) in enumerate(branches):
            lines.append(f"        {'if' if index == 0 else 'elif'} {condition}:")
            lines += ["            " + line for line in _init_lines(rule)]
        cls.lines_init.append("self.reset_weights()")
        cls.methods.append("\n".join(lines))

    def _module_text(self, classes: list[ClassDef], root: ClassDef) -> str:
        note = "\n".join(
            textwrap.wrap(
                "A snapshot of the spec at the params it was compiled with (its constructor "
                f"takes no spec params): {_sanitize(self.reason)}.",
                MAX_LINE,
                initial_indent="# ",
                subsequent_indent="# ",
            )
        )
        needs = {"NamedTuple"} if "outputs" in self.needs else set()
        needs |= self.needs & {"math", "float32"}
        text = header(self.graph.name, self.spec_file, needs)
        first, rest = text.split("\n", 1)
        parts = [f"{first}\n{note}\n{rest}"]
        parts += helper_sources(self.needs)
        if "StochasticDepth" in self.needs:
            parts.append(STOCHASTIC_DEPTH)
        if "outputs" in self.needs:
            fields = "\n".join(f"    {label}: torch.Tensor" for label in self.graph.outputs)
            parts.append(
                f"class {root.name}Outputs(NamedTuple):\n"
                f'    """The outputs of {root.name}, in spec order."""\n\n{fields}\n'
            )
        parts += [_class_text(cls) for cls in classes]
        return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)


class _Context:
    """Builds one class: its __init__ lines, its forward, and the arguments it takes."""

    def __init__(self, gen: Generator, cls: ClassDef) -> None:
        self.gen = gen
        self.cls = cls
        self.graph = gen.graph
        self.template = cls.paths[0]
        self.params: dict[str, list[Any]] = {}  # chosen argument name -> value per instance
        self.defaults: dict[str, Any] = {}
        self.names = self._available()
        self.taken = {"self", "torch", "nn", "math"}
        # channel counts written so far, newest last: (source text, value per instance)
        self.sizes: list[tuple[str, list[Any]]] = []

    # what expressions may name, per instance
    def _available(self) -> list[dict[str, Any]]:
        out = []
        for path in self.cls.paths:
            env: dict[str, Any] = dict(self.graph.params)
            if self.cls.kind == "root":
                env["in_channels"] = self.graph.input_shape[0]
            else:
                scope = self.graph.scopes[path]
                env.update({k: self._resolved(v) for k, v in scope.params.items()})
                source = scope.inputs[0] if scope.inputs else INPUT
                shape = self.gen.layers[source].shape if source in self.gen.layers else None
                env["in_channels"] = (shape or self.graph.input_shape)[0]
            out.append(env)
        return out

    def _resolved(self, value: Any) -> Any:
        if isinstance(value, Pending) or (
            isinstance(value, list) and any(isinstance(v, Pending) for v in value)
        ):
            shapes = {n: li.shape for n, li in self.gen.layers.items()}
            shapes[INPUT] = self.graph.input_shape
            return self.gen.model._inference._resolve(value, shapes)
        return value

    def instances(self, path: str) -> list[str]:
        """The path corresponding to `path` (written for the template) in every instance."""
        suffix = path[len(self.template) :]
        return [p + suffix for p in self.cls.paths]

    # __init__
    def init_item(self, item: Item) -> None:
        expr = self.module_expr(item)
        if isinstance(expr, tuple):  # a shortcut some instances need and others do not
            flag, module = expr
            first = (  # annotated: the attribute holds one module type or another
                f"self.{item.local}: nn.Module = nn.Identity()"
                if item.local.isidentifier()
                else _assign(item.local, "nn.Identity()")
            )
            self.cls.lines_init.append(f"{first}\nif {flag}:\n    {_assign(item.local, module)}")
        elif expr is not None:
            self.cls.lines_init.append(_assign(item.local, expr))

    def sequential_init(self, items: list[Item]) -> None:
        parts = [self.module_expr(item) for item in items]
        if not all(isinstance(p, str) for p in parts):
            raise GenerationError(f"'{self.template}': a sequence whose layers vary by instance")
        self.cls.lines_init = [f"super().__init__({', '.join(str(p) for p in parts)})"]

    def module_expr(self, item: Item) -> str | tuple[str, str] | None:
        paths = self.instances(item.path)
        if item.node is not None:
            infos = [self.gen._info(p) for p in paths]
            calls = [i.op.torch_call(i.input_shapes) if i.op else None for i in infos]
            if calls[0] is None:
                return None
            if infos[0].op is not None and infos[0].op.torch_helper:
                self.gen.needs.add(infos[0].op.torch_helper)
            active = [self._module_active(i) for i in infos]
            if not any(active):
                return "nn.Identity()"
            text = self.call_expr(calls, active, item.node, item.local)
            if all(active):
                return text
            return self.flag(item.local, active), text
        if self.gen._module_kind(item.path) == "sequential":
            children = [self.module_expr(c) for c in self.gen.children[item.path]]
            if any(isinstance(c, tuple) for c in children):
                raise GenerationError(f"'{item.path}': a sequence whose layers vary by instance")
            return "nn.Sequential(" + ", ".join(c for c in children if isinstance(c, str)) + ")"
        child = self.gen.class_of[item.path]
        args = []
        output: tuple[str, list[Any]] | None = None
        for pname, _hint, _values, _default in child.params:
            values = [child.value(pname, p) for p in paths]
            raw = self._call_site_raw(item, pname)
            leaf = Leaf(values, raw, f"{item.local}_{pname}", size=pname == "in_channels")
            text = self.choose(leaf)
            args.append(f"{pname}={text}")
            if pname == child.out_param:
                output = (text, values)
        if output is not None:
            self.sizes.append(output)
        return f"{child.name}({', '.join(args)})"

    @staticmethod
    def _module_active(info: LayerInfo) -> bool:
        return info.active and not (info.op is not None and info.op.is_identity(info.input_shapes))

    def _call_site_raw(self, item: Item, param: str) -> Any:
        scope = item.scope
        if scope is None:
            return None
        return lookup(self.graph.doc.data, (*scope.src, param))

    def call_expr(
        self, calls: list[Call | None], active: list[bool], node: Node, local: str
    ) -> str:
        template = next(c for c, a in zip(calls, active, strict=True) if a and c)
        parts = []
        for index, arg in enumerate(template.args):
            values = [
                c.args[index].value if c is not None and a else None
                for c, a in zip(calls, active, strict=True)
            ]
            if isinstance(arg.value, Call):
                sub = self.call_expr(values, active, node, local)
                parts.append(f"{arg.keyword}={sub}" if arg.keyword else sub)
                continue
            raw = lookup(self.graph.doc.data, (*node.src, arg.field)) if arg.field else None
            leaf = Leaf(
                values, raw, f"{local}_{arg.keyword or arg.field or 'channels'}", not arg.keyword
            )
            text = self.choose(leaf)
            if leaf.size:
                self.sizes.append((text, values))
            if arg.keyword and arg.omissible(_literal_value(text)):
                continue
            parts.append(f"{arg.keyword}={text}" if arg.keyword else text)
        return f"{template.func}({', '.join(parts)})"

    def flag(self, local: str, active: list[bool]) -> str:
        name = self._fresh(f"use_{local}")
        self.params[name] = active
        return name

    def choose(self, leaf: Leaf) -> str:
        """The source for a value: an expression, a param, a literal, or a new argument."""
        live = [(v, env) for v, env in zip(leaf.values, self.names, strict=True) if v is not None]
        if not live:
            return "None"
        text = self._from_spec(leaf.raw, live)
        if text is not None:
            return text
        if all(_same(v, live[0][0]) for v, _ in live):
            return literal(_as_tuple(live[0][0]))
        if leaf.size:  # a count that varies: most often the one just written (a conv's output)
            for written, values in self.sizes[::-1]:
                if all(v is None or _same(v, w) for v, w in zip(leaf.values, values, strict=True)):
                    return written
        # Values that vary: a param (or in_channels) with the same values in every instance.
        candidates = ["in_channels", *(k for k in live[0][1] if k not in self.graph.params)]
        for name in candidates:
            if all(name in env and _same(v, env[name]) for v, env in live):
                self._use(name)
                return name
        name = self._fresh(leaf.name)
        self.params[name] = leaf.values
        return name

    def _from_spec(self, raw: Any, live: list[tuple[Any, dict[str, Any]]]) -> str | None:
        try:
            text = source_of(raw)
        except ExprError:
            return None
        if text is None:
            return None
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            return None
        rewrite = _Expression()
        body = rewrite.visit(tree)
        if not rewrite.names <= set(live[0][1]):
            return None
        try:
            if not all(_same(evaluate(text, env), v) for v, env in live):
                return None
        except (ExprError, Exception):
            return None
        for name in sorted(rewrite.names):
            self._use(name)
        self.gen.needs |= rewrite.needs
        return ast.unparse(body)

    def _use(self, name: str) -> None:
        if name not in self.params:
            self.params[name] = [env.get(name) for env in self.names]
            if self.cls.kind == "root":
                self.defaults[name] = self.names[0].get(name)

    def _fresh(self, base: str) -> str:
        name = re.sub(r"\W", "_", base)
        if name[:1].isdigit():  # from a numbered layer: `0_hidden` is no identifier
            name = f"layer{name}"
        if keyword.iskeyword(name) or name in self.params or name in self.taken:
            n = 2
            while f"{name}_{n}" in self.params:
                n += 1
            name = f"{name}_{n}"
        return name

    def class_params(self) -> list[tuple[str, str, list[Any], Any]]:
        out = []
        for name, values in self.params.items():
            default = self.defaults.get(name, _UNSET) if self.cls.kind == "root" else _UNSET
            out.append((name, _type_hint(values), values, default))
        if self.cls.kind == "root":  # the root is built without arguments: all have defaults
            out = [(n, h, v, d if d is not _UNSET else v[0]) for n, h, v, d in out]
        return out

    # forward
    def forward(self) -> None:
        gen, template = self.gen, self.template
        scope = self.graph.scopes.get(template)
        inputs = scope.inputs if scope else (INPUT,)
        results = set(self.graph.outputs.values()) if not scope else {scope.output}
        items = self._open_tapped(gen.children[template], set(inputs), results)
        arg_names = self._input_names(len(inputs))
        var: dict[str, str] = dict(zip(inputs, arg_names, strict=True))
        uses: dict[str, int] = {}
        for item in items:
            for ref in self._runtime_inputs(item):
                uses[ref] = uses.get(ref, 0) + 1
        lines: list[str] = []
        deferred: list[str] = []  # what training alone computes, after the eval-mode return
        eval_output = self.graph.eval_output if scope is None else None
        needed = self.gen.model.upstream(self.graph.outputs[eval_output]) if eval_output else None
        for position, item in enumerate(items):
            args = [var[ref] for ref in item.inputs]
            training_only = needed is not None and item.output not in needed
            target = deferred if training_only and {"out", *arg_names}.isdisjoint(args) else lines
            inplace = self._inplace(item, args, uses, inputs)
            if inplace is not None:
                var[item.output] = args[0]
                target.append(inplace)
                continue
            expr = self._forward_expr(item, args)
            output = item.output
            if expr is None:  # switched off everywhere: the first input passes through
                var[output] = args[0]
                continue
            following = items[position + 1] if position + 1 < len(items) else None
            once = (
                uses.get(output, 0) == 1
                and output not in results  # an output is read again at the return
                and following is not None
                and (
                    following.inputs[:1] == (output,)  # the main path of the next layer
                )
            )
            last = following is None and output in results and uses.get(output, 0) == 0
            local = re.sub(r"\W", "_", item.local)  # `layer3.1.relu` when opened, below
            name = "out" if once or last else self._local_var(local, set(var.values()))
            var[output] = name
            target.append(f"{name} = {expr}")
        lines.append(self._return(scope, var, deferred))
        self.cls.lines_forward = lines
        self.cls.signature = ", ".join(f"{a}: torch.Tensor" for a in arg_names)

    def _open_tapped(self, items: list[Item], inputs: set[str], results: set[str]) -> list[Item]:
        """A layer inside a block may be read from outside it (`from: layer3.1.relu`): the
        forward then runs that block's children itself, in order, through their dotted
        attributes (`getattr(self.layer3, "1").relu`), so the inner result is at hand. The modules,
        and so the state_dict, stay as they are."""
        while True:
            made = inputs | {item.output for item in items}
            wanted = {r for item in items for r in item.inputs} | results
            missing = sorted(wanted - made)
            tapped = next(
                (
                    i
                    for i, item in enumerate(items)
                    if item.node is None and any(r.startswith(item.path + ".") for r in missing)
                ),
                None,
            )
            if tapped is None:
                return _in_order(items)
            outer = items[tapped]
            inner = [
                Item(child.path, f"{outer.local}.{child.local}", child.node, child.scope)
                for child in self.gen.children[outer.path]
            ]
            items = [*items[:tapped], *inner, *items[tapped + 1 :]]

    def _runtime_inputs(self, item: Item) -> tuple[str, ...]:
        refs = item.inputs
        info = self.gen.layers.get(item.node.name) if item.node is not None else None
        count = info.op.runtime_inputs if info is not None and info.op is not None else None
        return refs if count is None else refs[:count]

    def _inplace(
        self, item: Item, args: list[str], uses: dict[str, int], inputs: tuple[str, ...]
    ) -> str | None:
        """`out += shortcut` where that is safe: the first operand is used by nothing else,
        is no input of the module, and its producer's backward pass does not need it."""
        node = item.node
        if node is None:
            return None
        infos = [self.gen._info(p) for p in self.instances(item.path)]
        first = node.inputs[0]
        producer = self.gen.layers.get(first)
        if (
            not all(i.active for i in infos)
            or infos[0].op is None
            or first in inputs
            or uses.get(first, 0) != 1
            or producer is None
            or producer.op is None
            or not producer.op.output_overwritable
        ):
            return None
        return infos[0].op.torch_forward_inplace(args)

    def _input_names(self, count: int) -> list[str]:
        scope = self.graph.scopes.get(self.template)
        declared = lookup(self.graph.doc.data, ("blocks", scope.label, "inputs")) if scope else None
        if scope is not None and scope.kind == "block" and scope.label != "sequence":
            names = ["x" if n == "input" else n for n in (declared or ["input"])]
        else:
            names = ["x"] if count == 1 else [f"x{i}" for i in range(count)]
        self.taken.update(names)
        return names

    def _local_var(self, local: str, used: set[str]) -> str:
        name = local if local not in self.taken else f"{local}_"
        while name in used and name != "out":
            name += "_"
        return name

    def _forward_expr(self, item: Item, args: list[str]) -> str | None:
        paths = self.instances(item.path)
        if item.node is None:
            return f"{_attr(item.local)}({', '.join(args)})"
        infos = [self.gen._info(p) for p in paths]
        active = [i.active for i in infos]
        op = infos[0].op
        if op is None or not any(active):
            return None
        module = _attr(item.local) if op.torch_call(infos[0].input_shapes) else ""
        expr = op.torch_forward(module, args)
        if all(active):
            return expr
        flag = self.flag(item.local, active)
        self.cls.lines_init.append(f"self.{flag} = {flag}")
        return f"{expr} if self.{flag} else {args[0]}"

    def _return(self, scope: Scope | None, var: dict[str, str], deferred: list[str]) -> str:
        if scope is not None:
            return f"return {var[scope.output]}"
        outputs = self.graph.outputs
        if len(outputs) == 1:
            return f"return {var[next(iter(outputs.values()))]}"
        for label in outputs:
            if not label.isidentifier() or keyword.iskeyword(label):
                raise GenerationError(f"output label '{label}' is not a Python identifier")
        self.gen.needs.add("outputs")
        self.cls.returns = f"torch.Tensor | {self.cls.name}Outputs"
        joined = ", ".join(f"{label}={var[ref]}" for label, ref in outputs.items())
        text = f"return {self.cls.name}Outputs({joined})"
        eval_output = self.graph.eval_output
        if eval_output is not None:
            early = f"if not self.training:\n    return {var[outputs[eval_output]]}\n"
            text = early + "".join(f"{line}\n" for line in deferred) + text
        return text


def _in_order(items: list[Item]) -> list[Item]:
    """The items in spec order, except that each comes after the items it reads (a `from:`
    may name a later layer)."""
    producer = {item.output: i for i, item in enumerate(items)}
    g: nx.DiGraph[int] = nx.DiGraph()
    g.add_nodes_from(range(len(items)))
    g.add_edges_from(
        (producer[r], i)
        for i, item in enumerate(items)
        for r in item.inputs
        if r in producer and producer[r] != i
    )
    return [items[i] for i in nx.lexicographical_topological_sort(g)]


def _attr(local: str) -> str:
    """How forward reaches a child module: `self.conv1`, getattr for names like `0`, and a
    dotted path into a block (see `_open_tapped`)."""
    expr = "self"
    for part in local.split("."):
        expr = f"{expr}.{part}" if part.isidentifier() else f'getattr({expr}, "{part}")'
    return expr


def _assign(local: str, expr: str) -> str:
    if local.isidentifier():
        return f"self.{local} = {expr}"
    return f"self.add_module({local!r}, {expr})"


def _call_shape(made: Call | None) -> str:
    if made is None:
        return "-"
    args = ",".join(
        (_call_shape(a.value) if isinstance(a.value, Call) else (a.keyword or "_"))
        for a in made.args
    )
    return f"{made.func}({args})"


def _as_tuple(value: Any) -> Any:
    """Lists as tuples, at any depth: arguments are immutable, and hinted `tuple[...]`."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def _literal_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _UNSET


def _wrap(line: str, indent: str) -> Iterator[str]:
    """Lines of code at `indent`; a call too long for one line gets an argument per line."""
    if "\n" in line:
        for part in line.split("\n"):
            stripped = part.lstrip(" ")
            yield from _wrap(stripped, indent + part[: len(part) - len(stripped)])
        return
    start = line.find("(")
    while start >= 0 and line.startswith("()", start):  # `super().__init__(...)`: the second
        start = line.find("(", start + 2)
    end = _closing(line, start) if start >= 0 else -1
    if len(indent) + len(line) <= MAX_LINE or end < 0:
        yield indent + line
        return
    yield f"{indent}{line[: start + 1]}"
    for arg in split_arguments(line[start + 1 : end]):
        yield from _wrap(arg + ",", indent + "    ")
    yield f"{indent}){line[end + 1 :]}"


def _closing(text: str, start: int) -> int:
    """The index of the bracket closing the one at `start` (-1 if none)."""
    depth = 0
    for index in range(start, len(text)):
        depth += text[index] in "([{"
        depth -= text[index] in ")]}"
        if depth == 0:
            return index
    return -1


def _class_text(cls: ClassDef) -> str:
    params: list[str] = []
    fixed: list[str] = []  # the model's params: values of this snapshot, never arguments
    for name, hint, _values, default in cls.params:
        text = f"{name}: {hint}"
        if default is not _UNSET:
            text += f" = {literal(_as_tuple(default))}"
        (fixed if cls.kind == "root" else params).append(text)
    signature = ", ".join(["self", *params])
    label = cls.label if cls.kind == "root" else _sanitize(cls.label)  # keep spec text inert
    what = {"root": label, "block": f"Block `{label}` of the spec", "scope": f"`{label}`"}
    lines = [
        f"class {cls.name}({cls.base}):",
        f'    """{what[cls.kind]}."""',
        "",
        *_wrap(f"def __init__({signature}) -> None:", "    "),
    ]
    if fixed:
        lines.append("        # the spec's params as compiled (a snapshot takes no arguments)")
        lines += [f"        {text}" for text in fixed]
    if cls.base == "nn.Module":
        lines.append("        super().__init__()")
    for line in cls.lines_init:
        lines += _wrap(line, "        ")
    for method in cls.methods:
        lines += ["", *_wrap(method, "    ")]
    if cls.lines_forward:  # an nn.Sequential needs none
        lines += ["", *_wrap(f"def forward(self, {cls.signature}) -> {cls.returns}:", "    ")]
        for line in cls.lines_forward:
            lines += _wrap(line, "        ")
    return "\n".join(lines) + "\n"
