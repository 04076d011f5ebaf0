"""The `cnngraph` command: validate, summary, build, render, schema.

Exit codes: 0 clean (warnings allowed), 1 the specs have errors, 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__, source
from .backends.summary import si
from .errors import Diagnostic, SpecError, format_github, format_text, printable
from .model import Model, load
from .source import parse

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


class UsageError(Exception):
    """A mistake in the command line itself (exit status 2)."""


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


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, measuring the terminal once: argparse makes a formatter for
    every argument declared, and each asked for the terminal's size (15 ms per run)."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("width", _terminal_width())
        super().__init__(prog, **kwargs)


@functools.cache
def _terminal_width() -> int:
    return shutil.get_terminal_size().columns - 2  # as argparse computes it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        formatter_class=_Formatter,
        prog="cnngraph",
        description="Compile CNN graph specs: validate them, infer shapes, count params and MACs.",
    )
    parser.add_argument("--version", action="version", version=f"cnngraph {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    validate = sub.add_parser(
        "validate",
        formatter_class=_Formatter,
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
    _add_set(validate)
    validate.set_defaults(run=_validate)

    summary = sub.add_parser(
        "summary",
        formatter_class=_Formatter,
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
        formatter_class=_Formatter,
        help="write standalone torch source for a spec",
        description="Generate a Python module (importing only torch) with one nn.Module class "
        "per block definition and the model class last.",
    )
    _add_spec(build)
    build.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    build.set_defaults(run=_build)

    render = sub.add_parser(
        "render",
        formatter_class=_Formatter,
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

    schema = sub.add_parser(
        "schema", help="print the JSON Schema of the spec format", formatter_class=_Formatter
    )
    schema.set_defaults(run=_schema)
    return parser


def _add_spec(parser: argparse.ArgumentParser) -> None:
    """The arguments of commands that compile one spec."""
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument(
        "--input",
        type=_input_shape,
        metavar="CxHxW",
        help="input shape per sample, e.g. 3x224x224 (overrides the spec)",
    )
    _add_set(parser)


def _compile(args: argparse.Namespace) -> Model | None:
    """The spec named on the command line, compiled; None (diagnostics printed) if it fails."""
    overrides = _overrides(args.overrides)
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
            _print_diagnostics(exc.diagnostics, "stderr")
        return None


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a model param (repeatable); VALUE is YAML: 10, 0.5, true, [1, 2]",
    )


def _input_shape(text: str) -> tuple[int, ...]:
    """`3x224x224`, or as a spec writes it: `3,224,224` or `[3, 224, 224]`."""
    parts = text.strip().strip("[]()").replace(",", "x").replace(" ", "").lower().split("x")
    if not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not like 3x224x224")
    dims = tuple(int(p) for p in parts)
    if len(dims) not in (1, 3) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': give CxHxW or F, all positive")
    return dims


def _depth(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"depth must be a positive integer, got '{text}'")
    return int(text)


def _overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            out[key.strip()] = parse(value, "--set").data if value.strip() else ""
        except SpecError as exc:
            raise UsageError(f"--set {key}: {exc.diagnostics[0].message}") from None
    return out


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


def _source_lines(file: str) -> list[str]:
    try:
        return source.read_text(Path(file), file).splitlines()
    except (SpecError, OSError, UnicodeDecodeError):
        return []


def _print_diagnostics(diagnostics: Sequence[Diagnostic], fmt: str) -> None:
    lines: dict[str, list[str]] = {}
    for d in diagnostics:
        if fmt == "github":
            print(format_github(d))
        else:
            file = d.location.file
            if file not in lines:
                lines[file] = _source_lines(file)
            print(format_text(d, lines[file]), file=sys.stderr if fmt == "stderr" else sys.stdout)


def _validate(args: argparse.Namespace) -> int:
    overrides = _overrides(args.overrides)
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
        _print_diagnostics(diagnostics, args.format)
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
    _write_atomically(Path(args.output), source.encode())
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
            _write_atomically(fallback, source.encode())
            saved = f"wrote the diagram's source to {fallback}"
        print(f"cnngraph: {exc}\n{saved}", file=sys.stderr)
        return 1
    _write_atomically(output, data)
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


def _write_atomically(path: Path, data: str | bytes) -> None:
    """Write through a temporary file in the same directory: never a half-written file."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(
            "wb",
            dir=path.parent or Path("."),
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        ) as tmp:
            tmp.write(data.encode() if isinstance(data, str) else data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp.name, 0o666 & ~umask)  # as any new file, not tempfile's private 0600
        os.replace(tmp.name, path)
    except OSError as exc:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp.name)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _schema(args: argparse.Namespace) -> int:
    from .schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0
