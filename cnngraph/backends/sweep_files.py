"""What a sweep writes: its rows as CSV or JSON Lines, the kept variants as spec files, and a
plot of params against MACs (matplotlib, an optional extra)."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..sweep import METRICS, Row

FORMATS = ("csv", "jsonl")


def record(row: Row) -> dict[str, Any]:
    """A row as JSON Lines writes it: the swept values under "values"."""
    return {
        "variant": row.variant,
        "status": row.status,
        "code": row.code,
        **{name: row.metrics.get(name) for name in METRICS},
        "output_shape": row.output_shape,
        "input_sizes": row.input_sizes,
        "values": row.values,
        "message": row.message,
    }


class RowWriter:
    """Rows to a text stream, as CSV (swept values in `values.NAME` columns, lists as JSON) or
    as JSON Lines."""

    def __init__(self, stream: io.TextIOBase | Any, fmt: str, swept: Sequence[str]) -> None:
        self.stream = stream
        self.fmt = fmt
        self.columns = [
            "variant",
            "status",
            "code",
            *METRICS,
            "output_shape",
            "input_sizes",
            *(f"values.{name}" for name in swept),
            "message",
        ]
        self.csv: Any = None
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, self.columns, lineterminator="\n")
            self.csv.writeheader()

    def write(self, row: Row) -> None:
        out = record(row)
        if self.csv is None:
            self.stream.write(json.dumps(out, separators=(",", ":")) + "\n")
            return
        values = out.pop("values")
        flat = {**out, **{f"values.{k}": v for k, v in values.items()}}
        self.csv.writerow({k: _cell(v) for k, v in flat.items()})


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(", ", ": "))
    return "" if value is None else value


def variant_spec(
    data: Mapping[str, Any], values: Mapping[str, Any], input_shape: Sequence[int] | None
) -> dict[str, Any]:
    """The spec with the variant's values as its params' defaults (a typed param keeps its
    type), and the input it was compiled for."""
    out = copy.deepcopy(dict(data))
    params = out.get("params")
    params = dict(params) if isinstance(params, dict) else {}
    for key, value in values.items():
        value = _literal(value)
        declared = params.get(key)
        if isinstance(declared, dict) and "type" in declared:
            params[key] = {**declared, "default": value}
        else:
            params[key] = value
    out["params"] = params
    if input_shape is not None:
        out["input"] = list(input_shape)
    return out


def _literal(value: Any) -> Any:
    """A value as the spec file must write it to mean itself: a text set on the command line
    stays text (`$other` is written `$$other`, not read as a reference)."""
    if isinstance(value, str) and value.startswith("$"):
        return "$" + value
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value


def spec_text(spec: Mapping[str, Any], header: Iterable[str]) -> str:
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.dump(
        dict(spec),
        Dumper=_DUMPER,
        sort_keys=False,
        default_flow_style=None,
        width=100,
        allow_unicode=False,
    )


# libyaml's emitter where installed (5x faster: a sweep may emit thousands of specs); it
# breaks long lines elsewhere than the pure-Python one, the same values either way
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def plot(rows: Sequence[Row], title: str, defaults: Mapping[str, int] | None = None) -> bytes:
    """PNG bytes: params against MACs, kept variants in colour, the rest in grey, and the
    spec at its defaults as a star."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5), dpi=110)
    for status, colour, label in (
        ("rejected", "#bbbbbb", "left out by --where"),
        ("kept", "#1f6fb4", "kept"),
    ):
        chosen = [r for r in rows if r.status == status]
        if chosen:
            axes.scatter(
                [r.metrics["macs"] / 1e6 for r in chosen],
                [r.metrics["params"] / 1e6 for r in chosen],
                s=10,
                c=colour,
                label=f"{label} ({len(chosen):,})",
                alpha=0.8,
                linewidths=0,
            )
    if defaults is not None:
        axes.scatter(
            [defaults["macs"] / 1e6],
            [defaults["params"] / 1e6],
            s=90,
            marker="*",
            c="#c92a2a",
            label="the spec's defaults",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("MACs (millions)")
    axes.set_ylabel("params (millions)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(loc="upper left")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def variant_name(stem: str, variant: int, total: int) -> str:
    return f"{stem}-{variant:0{len(str(max(total - 1, 1)))}d}.yaml"


def emitted_path(directory: Path, stem: str, variant: int, total: int) -> Path:
    return directory / variant_name(stem, variant, total)
