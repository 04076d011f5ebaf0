"""The `cnngraph` command: validate, summary, build, render, schema.

Exit codes: 0 clean (warnings allowed), 1 the specs have errors, 2 usage error.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__, source
from .backends.summary import si
from .cli_common import (
    Formatter,
    UsageError,
    add_set,
    input_shape,
    param_overrides,
    print_diagnostics,
    write_atomically,
)
from .errors import Diagnostic, SpecError, printable
from .model import Model, load

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def main(argv: Sequence[str] | None = None) -> int:
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Printable(sys.stdout), _Printable(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = streams


class _Printable:
    """A text stream that shows control characters as escapes: names and paths from a spec
    or the command line reach the terminal, and must not move its cursor or recolour it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(printable(text))
        return len(text)  # as a stream reports: what it was given

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except UsageError as exc:
        parser.exit(2, f"cnngraph: error: {exc}\n")
    except KeyboardInterrupt:  # Ctrl-C: what was being written is left as it was
        print("cnngraph: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `cnngraph summary ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not a user mistake: say so without a wall of traceback
        if os.environ.get("CNNGRAPH_DEBUG"):
            raise
        print(
            f"cnngraph: internal error: {type(exc).__name__}: {exc}\n"
            "this is a bug in cnngraph; rerun with CNNGRAPH_DEBUG=1 for the traceback and "
            "please report it",
            file=sys.stderr,
        )
        return 3
    return 2  # pragma: no cover - parser.exit does not return


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        formatter_class=Formatter,
        prog="cnngraph",
        description="Compile CNN graph specs: validate them, infer shapes, count params and MACs.",
    )
    parser.add_argument("--version", action="version", version=f"cnngraph {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    validate = sub.add_parser(
        "validate",
        formatter_class=Formatter,
        help="check spec files; exit 1 if any has errors",
        description="Check spec files, directories (searched for "
        "*.yaml, *.yml, *.json) or glob patterns.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="github: workflow commands that annotate pull requests",
    )
    validate.add_argument("--strict", action="store_true", help="treat warnings as errors")
    validate.add_argument(
        "--specs-only",
        action="store_true",
        help="skip files without a top-level `cnngraph:` key (other YAML in a repository)",
    )
    add_set(validate)
    validate.set_defaults(run=_validate)

    summary = sub.add_parser(
        "summary",
        formatter_class=Formatter,
        help="per-layer shapes, params and MACs",
        description="Print a table of layers with output shapes, "
        "parameter counts and MACs, and the totals.",
    )
    _add_spec(summary)
    summary.add_argument(
        "--depth",
        type=_depth,
        default=None,
        help="fold layers deeper than N into their blocks (text default: 3, JSON default: all)",
    )
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.set_defaults(run=_summary)

    build = sub.add_parser(
        "build",
        formatter_class=Formatter,
        help="write standalone torch source for a spec",
        description="Generate a Python module (importing only torch) with one nn.Module class "
        "per block definition and the model class last.",
    )
    _add_spec(build)
    build.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    build.set_defaults(run=_build)

    render = sub.add_parser(
        "render",
        formatter_class=Formatter,
        help="draw a spec with Graphviz",
        description="Draw the model: blocks as clusters, skip connections styled, shapes on "
        "edges. Uses the system's Graphviz, else the graphviz-pure package.",
    )
    _add_spec(render)
    render.add_argument("-o", "--output", metavar="FILE", help="default: SPEC's name + format")
    render.add_argument(
        "--format", choices=("svg", "png", "pdf", "dot"), help="default: from -o's suffix, else svg"
    )
    render.add_argument("--depth", type=_depth, default=None, help="fold blocks below depth N")
    render.add_argument("--rankdir", choices=("TB", "LR"), default="TB")
    render.set_defaults(run=_render)

    _add_sweep(sub)

    schema = sub.add_parser(
        "schema", help="print the JSON Schema of the spec format", formatter_class=Formatter
    )
    schema.set_defaults(run=_schema)
    return parser


def _add_sweep(sub: Any) -> None:
    sweep = sub.add_parser(
        "sweep",
        formatter_class=Formatter,
        help="compile many variants of a spec's params: figures as CSV or JSON Lines",
        description="Evaluate variants of a spec's params without torch: every combination of "
        "the --grid values, or --sample N draws of the --dist distributions (or both), each "
        "compiled and counted. Variants that do not compile are rows with their diagnostic.",
        epilog="distributions: choice(a, b, ...), int(lo, hi[, step]), log_int(lo, hi[, step]), "
        "uniform(lo, hi), log_uniform(lo, hi), lists of them ([d] * 4 for four draws), "
        "sorted(...); see docs/sweeps.md",
    )
    sweep.add_argument("spec", metavar="SPEC", help="the spec whose params vary")
    sweep.add_argument("--file", metavar="SWEEP", help="a sweep file (YAML); flags win over it")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="values of a param, all combined with the other --grid params (repeatable)",
    )
    sweep.add_argument(
        "--dist",
        action="append",
        default=[],
        metavar="KEY=DISTRIBUTION",
        help="a param drawn from a distribution, --sample times (repeatable)",
    )
    sweep.add_argument("--sample", type=_positive, metavar="N", help="draws of the --dist values")
    sweep.add_argument("--seed", type=int, help="of the draws (default 0)")
    sweep.add_argument(
        "--where", metavar="EXPR", help="keep variants where it holds: 'macs <= 400e6'"
    )
    sweep.add_argument("--input", type=input_shape, metavar="CxHxW", help="the input per sample")
    add_set(sweep)
    sweep.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    sweep.add_argument("--format", choices=("csv", "jsonl"), help="default: -o's suffix, else csv")
    sweep.add_argument(
        "--jobs", type=_count, default=1, metavar="N", help="processes (0: one per core)"
    )
    sweep.add_argument("--emit", metavar="DIR", help="write each kept variant as a spec file")
    sweep.add_argument("--plot", metavar="PNG", help="params against MACs (needs matplotlib)")
    sweep.add_argument(
        "--no-sizes", action="store_true", help="skip the valid input sizes (faster)"
    )
    sweep.set_defaults(run=_sweep)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got '{text}'")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return int(text)


def _sweep(args: argparse.Namespace) -> int:
    from .cli_sweep import main as sweep  # its imports are for sweeps alone

    return sweep(args)


def _add_spec(parser: argparse.ArgumentParser) -> None:
    """The arguments of commands that compile one spec."""
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument(
        "--input",
        type=input_shape,
        metavar="CxHxW",
        help="input shape per sample, e.g. 3x224x224 (overrides the spec)",
    )
    add_set(parser)


def _compile(args: argparse.Namespace) -> Model | None:
    """The spec named on the command line, compiled; None (diagnostics printed) if it fails."""
    overrides = param_overrides(args.overrides)
    if not Path(args.spec).exists():
        raise UsageError(f"no such file: '{args.spec}'")
    try:
        return load(Path(args.spec), overrides or None, args.input)
    except SpecError as exc:
        if getattr(args, "json", False):  # a script reads stdout: the report as validate's
            errors = sum(d.is_error for d in exc.diagnostics)
            report = _report(args.spec, False, exc.diagnostics)
            _print_json([report], errors, len(exc.diagnostics) - errors)
        else:
            print_diagnostics(exc.diagnostics, "stderr")
        return None


def _depth(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"depth must be a positive integer, got '{text}'")
    return int(text)


def _spec_files(patterns: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SPEC_SUFFIXES)
            if not found:
                raise UsageError(f"no spec files (*.yaml, *.yml, *.json) under '{pattern}'")
            files += found
        elif path.exists():
            files.append(path)
        elif glob.has_magic(pattern):
            matched = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            if not matched:
                raise UsageError(f"no files match '{pattern}'")
            files += matched
        else:
            raise UsageError(f"no such file or directory: '{pattern}'")
    return list(dict.fromkeys(files))


def _validate(args: argparse.Namespace) -> int:
    overrides = param_overrides(args.overrides)
    files = _spec_files(args.paths)
    if args.specs_only:
        files = [f for f in files if _looks_like_a_spec(f)]
    reports: list[dict[str, Any]] = []
    errors = warnings = 0
    for file in files:
        try:
            model: Model | None = load(file, overrides or None)
            diagnostics = model.warnings if model else []
        except SpecError as exc:
            model, diagnostics = None, exc.diagnostics
        file_errors = sum(d.is_error for d in diagnostics)
        file_warnings = len(diagnostics) - file_errors
        errors += file_errors
        warnings += file_warnings
        # under --strict a warning fails the file, as it fails the run
        ok = model is not None and not (args.strict and file_warnings)
        report = _report(str(file), ok, diagnostics)
        if model is not None:
            report.update(name=model.name, params=model.params, macs=model.macs)
        reports.append(report)
        if args.format == "json":
            continue
        print_diagnostics(diagnostics, args.format)
        if model is not None and args.format == "text":
            print(
                f"ok  {file}  {model.name}: {model.params:,} params, "
                f"{si(model.macs, 'MACs')}, output {_shape_text(model)}"
            )
    failed = errors + (warnings if args.strict else 0)
    if args.format == "json":
        _print_json(reports, errors, warnings)
    else:
        bad = sum(not r["ok"] for r in reports)
        print(
            f"{len(files)} file(s): {len(files) - bad} ok, {bad} "
            f"{'failed (--strict)' if args.strict else 'with errors'}; "
            f"{errors} error(s), {warnings} warning(s)"
        )
    return 1 if failed else 0


_SPEC_KEY = re.compile(r"""^(?:["']?cnngraph["']?\s*:|\s*\{?\s*"cnngraph"\s*:)""", re.MULTILINE)


def _looks_like_a_spec(file: Path) -> bool:
    """A file that says it is a spec: `cnngraph: 1` at the top level (YAML) or a JSON key."""
    try:
        return _SPEC_KEY.search(source.read_text(file, str(file))) is not None
    except (SpecError, OSError, UnicodeDecodeError):
        return True  # unreadable: validate says why


def _report(file: str, ok: bool, diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    """One file's entry in the JSON that `validate --format json` and `summary --json` print."""
    return {"file": file, "ok": ok, "diagnostics": [d.to_dict() for d in diagnostics]}


def _print_json(reports: list[dict[str, Any]], errors: int, warnings: int) -> None:
    print(json.dumps({"files": reports, "errors": errors, "warnings": warnings}, indent=2))


def _shape_text(model: Model) -> str:
    shape = model.output_shape
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {list(v)}" for k, v in shape.items()) + "}"
    return str(list(shape))


def _summary(args: argparse.Namespace) -> int:
    model = _compile(args)
    if model is None:
        return 1
    if args.json:
        print(json.dumps(model.to_dict(args.depth), indent=2))
    else:
        print(model.summary(args.depth if args.depth is not None else 3))
    return 0


def _build(args: argparse.Namespace) -> int:
    from .backends.pytorch import GenerationError

    model = _compile(args)
    if model is None:
        return 1
    try:
        source = model.torch_source(args.spec)
    except GenerationError as exc:
        print(f"cnngraph: cannot generate torch source: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(source)
        return 0
    write_atomically(Path(args.output), source.encode())
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _render(args: argparse.Namespace) -> int:
    from .backends.dot import FORMATS, RenderError, render

    model = _compile(args)
    if model is None:
        return 1
    suffix = Path(args.output).suffix.lstrip(".").lower() if args.output else ""
    fmt = args.format or (suffix if suffix in FORMATS else "svg")
    output = Path(args.output or f"{Path(args.spec).stem}.{fmt}")
    source = model.to_dot(args.depth, args.rankdir)
    try:
        data = render(source, fmt)
    except RenderError as exc:
        # The diagram's source is still worth having, but never over a file the user has.
        fallback = output.with_suffix(".dot")
        if fallback.exists():
            saved = f"{fallback} exists and is left as it is; --format dot writes the source"
        else:
            write_atomically(fallback, source.encode())
            saved = f"wrote the diagram's source to {fallback}"
        print(f"cnngraph: {exc}\n{saved}", file=sys.stderr)
        return 1
    write_atomically(output, data)
    print(f"wrote {output}", file=sys.stderr)
    size = _png_size(data) if fmt == "png" else None
    if size is not None and (max(size) >= PNG_LIMIT or max(size) > 30 * min(size)):
        print(
            f"cnngraph: the picture is {size[0]:,} x {size[1]:,} pixels, too long to read "
            f"(Graphviz's dot shrinks a side past {PNG_LIMIT:,}): fold blocks with --depth 2, "
            "or use --format svg",
            file=sys.stderr,
        )
    return 0


PNG_LIMIT = 32_767  # Graphviz's largest bitmap side; a larger drawing is scaled to fit


def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _schema(args: argparse.Namespace) -> int:
    from .schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0
