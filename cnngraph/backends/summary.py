"""The summary backend: a torchinfo-style text table and the equivalent JSON-ready dict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ops import Shape
from ..passes.sizes import describe

if TYPE_CHECKING:
    from ..model import Model

BYTES_PER_VALUE = 4  # float32, the size people quote


def _shape(shape: Shape | dict[str, Shape]) -> str:
    if isinstance(shape, dict):
        return ", ".join(f"{k}: {list(v)}" for k, v in shape.items())
    return str(list(shape))


def si(value: int, unit: str) -> str:
    """`4.09 GMAC`, `437.95 MMAC`, `12 MAC`: three significant figures or more, whatever the
    size (a small model's count is not `0.000 G`)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value} {unit}"


def _mib(count: int) -> str:
    return f"{count * BYTES_PER_VALUE / 2**20:,.2f} MiB"


def activations(model: Model) -> int:
    """Values produced per sample by all active layers: what a forward pass keeps for backward."""
    total = 0
    for info in model._ordered_layers:
        if info.active:
            size = 1
            for d in info.shape:
                size *= d
            total += size
    return total


def render_text(model: Model, depth: int | None) -> str:
    rows = model.rows(depth)
    table = [("Layer", "Op", "Output shape", "Params", "MACs")]
    for row in rows:
        table.append(
            (
                "  " * (row.depth - 1) + row.name,
                row.op,
                str(list(row.shape)),
                f"{row.params:,}" if row.params else "-",
                f"{row.macs:,}" if row.macs else "-",
            )
        )
    widths = [max(map(len, column)) for column in zip(*table, strict=True)]
    width = sum(widths) + 2 * 4
    template = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))

    def line(r: tuple[str, ...]) -> str:
        return template.format(*r)

    rule = "=" * width
    values = activations(model)
    out = [
        f"{model.name}: input {list(model.input_shape)} per sample (batch omitted)",
        rule,
        line(table[0]),
        "-" * width,
        *(line(r) for r in table[1:]),
        rule,
    ]
    out += [
        f"Output shape:  {_shape(model.output_shape)}",
        f"Params:        {model.params:,}  ({_mib(model.params)} as float32)",
        f"MACs:          {model.macs:,}  ({si(model.macs, 'MAC')}; FLOPs = 2 x MACs)",
        *(
            [f"               {model.training_macs:,} in training, with every output"]
            if model.training_macs != model.macs
            else []
        ),
        f"Activations:   {values:,} values per sample ({_mib(values)})",
        f"Input sizes:   {describe(model.input_size_rules)}",
        *(
            [f"               {describe(model.training_input_size_rules)} in training"]
            if model.training_input_size_rules != model.input_size_rules
            else []
        ),
    ]
    if depth is not None and len(rows) < len(model._ordered_layers) + len(model.graph.scopes):
        out.append(
            f"(layers below depth {depth} are folded into their blocks; --depth to see more)"
        )
    for warning in model.warnings:
        out.append(f"warning {warning.code}: {warning.message} ({warning.location})")
    return "\n".join(out)


def render_dict(model: Model, depth: int | None) -> dict[str, Any]:
    output: Any = model.output_shape
    output = {k: list(v) for k, v in output.items()} if isinstance(output, dict) else list(output)
    rules = model.input_size_rules
    return {
        "name": model.name,
        "input_shape": list(model.input_shape),
        "output_shape": output,
        "params": model.params,
        "macs": model.macs,
        "training_macs": model.training_macs,
        "flops": 2 * model.macs,
        "activations": activations(model),
        "input_sizes": None if rules is None else {r.axis: r.to_dict() for r in rules},
        "layers": [row.to_dict() for row in model.rows(depth)],
        "warnings": [w.to_dict() for w in model.warnings],
    }
