"""`cnngraph sweep`: the command line of sweeps (the work is in sweep.py and space.py)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import expr, pydantic_errors
from .cli_common import (
    UsageError,
    atomic_output,
    param_overrides,
    print_diagnostics,
    write_atomically,
)
from .errors import Diagnostics, SpecError, did_you_mean
from .model import Compiler, Model
from .source import Document, parse, read_text
from .space import Space, SpaceError, grid_values
from .sweep import Progress, Row, Where, default_jobs, metrics, run


class SweepFile(BaseModel):
    """A sweep written down: what `--grid`, `--dist`, `--sample`, `--seed`, `--where`, `--set`
    and `--input` say on the command line (which wins over the file)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    dist: dict[str, str] = Field(default_factory=dict)
    sample: int | None = Field(default=None, ge=1)
    seed: int = 0
    where: str | None = None
    set_: dict[str, Any] = Field(default_factory=dict, alias="set")
    input: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)

    @field_validator("input")
    @classmethod
    def _input_rank(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(value) not in (1, 3):
            raise ValueError("input is [C, H, W] or [features]")
        return value


def main(args: argparse.Namespace) -> int:
    if not Path(args.spec).exists():
        raise UsageError(f"no such file: '{args.spec}'")
    written = _sweep_file(args.file) if args.file else SweepFile()
    if written is None:
        return 1
    fixed = {**written.set_, **param_overrides(args.overrides)}
    shape = args.input or (tuple(written.input) if written.input else None)
    space = _space(args, written)
    try:
        compiler = Compiler(Path(args.spec))
    except SpecError as exc:
        print_diagnostics(exc.diagnostics, "stderr")
        return 1
    declared = _declared_params(compiler.document)
    for name in [*space.grid, *space.distributions, *fixed]:
        if name not in declared:
            hint = did_you_mean(name, declared) or f"params: {', '.join(declared) or 'none'}"
            raise UsageError(f"CG603 '{name}' is not a param of {args.spec}; {hint}")
    defaults, base = _base(compiler, fixed, shape, space)
    if base is None:
        return 1
    where = _where(args.where or written.where, declared)
    if where is not None:  # a --where that fails on the spec itself fails before any output
        _judge(where, Row(-1, {}, metrics=metrics(base), model_params=dict(base.graph.params)))
    if args.plot:
        _need_matplotlib()
    for path in (args.output, args.plot):
        if path is not None and not Path(path).parent.is_dir():
            raise UsageError(f"cannot write {path}: no directory '{Path(path).parent}'")
    suffix = Path(args.output).suffix.lower() if args.output else ""
    fmt = args.format or ("jsonl" if suffix in (".jsonl", ".json") else "csv")
    jobs = default_jobs() if args.jobs == 0 else args.jobs
    progress = Progress(space.size())
    plotted: list[Row] = []
    from .backends.sweep_files import RowWriter

    with _output(args.output) as stream, _Emitter(args, compiler, fixed, shape, space) as emit:
        writer = RowWriter(stream, fmt, [*space.grid, *space.distributions])
        evaluator = (Path(args.spec), fixed, shape, not args.no_sizes)
        try:
            for row in run(space, evaluator, where, jobs, progress):
                writer.write(row)
                if row.status != "invalid" and args.plot:
                    plotted.append(Row(row.variant, {}, row.status, row.metrics))
                if row.status == "kept":
                    emit(row)
        except expr.ExprError as exc:  # a --where that fails on a variant's values
            raise _where_error(exc) from None
        except SpaceError as exc:  # pragma: no cover - Space.check draws each distribution
            raise UsageError(f"CG602 {exc.message}") from None
    print(progress.finish(), file=sys.stderr)
    if progress.counts["invalid"] and not (progress.counts["kept"] or progress.counts["rejected"]):
        print("cnngraph: no variant compiles (see the rows' messages)", file=sys.stderr)
        return 1
    if args.plot:
        stem = Path(args.spec).stem
        _write_plot(Path(args.plot), plotted, stem, space.size(), defaults)
    return 0


def _base(
    compiler: Compiler, fixed: dict[str, Any], shape: tuple[int, ...] | None, space: Space
) -> tuple[dict[str, int] | None, Model | None]:
    """The spec at its defaults (the plot's star), and a model to check --where on: the
    defaults, or the first variant where the defaults do not compile (a param without a
    default that every variant sets). (None, None) with diagnostics when neither compiles."""
    try:
        model = compiler.load(fixed or None, shape)
        return metrics(model), model
    except SpecError as exc:
        first = next(space.variants())
        try:
            return None, compiler.load({**fixed, **first}, shape)
        except SpecError:
            print_diagnostics(exc.diagnostics, "stderr")
            print(
                "cnngraph: the spec compiles neither at its defaults nor for the first variant",
                file=sys.stderr,
            )
            return None, None


def _where_error(exc: expr.ExprError) -> UsageError:
    hint = f"; {exc.hint}" if exc.hint else ""
    return UsageError(f"CG604 --where: {exc.message}{hint}")


def _judge(where: Where, row: Row) -> None:
    try:
        where(row)
    except expr.ExprError as exc:
        raise _where_error(exc) from None


class _Emitter:
    """Kept variants as spec files (none without --emit), staged in a directory beside the
    target and moved in when the sweep succeeds: a sweep that fails emits nothing."""

    def __init__(
        self,
        args: argparse.Namespace,
        compiler: Compiler,
        fixed: dict[str, Any],
        shape: tuple[int, ...] | None,
        space: Space,
    ) -> None:
        self.target = Path(args.emit) if args.emit else None
        self.spec, self.data, self.fixed = args.spec, compiler.document.data, fixed
        self.shape, self.total = shape, space.size()
        self.staging: Path | None = None

    def __enter__(self) -> Callable[[Row], None]:
        if self.target is not None:
            if self.target.exists() and not self.target.is_dir():
                raise UsageError(f"--emit {self.target}: not a directory")
            if self.target.is_dir() and any(self.target.iterdir()):
                # the specs of two sweeps mixed in one directory could not be told apart
                raise UsageError(
                    f"--emit {self.target}: the directory is not empty; give a new one, or empty it"
                )
            parent = self.target.parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
                self.staging = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=parent))
            except OSError as exc:
                raise UsageError(f"cannot write {self.target}: {exc.strerror or exc}") from None
        return self.write

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if self.staging is None or self.target is None:
            return
        try:
            if kind is None:
                self.target.mkdir(exist_ok=True)
                for path in sorted(self.staging.iterdir()):
                    os.replace(path, self.target / path.name)
        except OSError as exc:
            raise UsageError(f"cannot write {self.target}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def write(self, row: Row) -> None:
        if self.staging is None:
            return
        from .backends.sweep_files import emitted_path, spec_text, variant_spec

        header = [
            f"variant {row.variant} of {self.spec}, written by `cnngraph sweep`",
            ", ".join(f"{k}={v}" for k, v in row.values.items()),
            f"{row.metrics['params']:,} params, {row.metrics['macs']:,} MACs",
        ]
        spec = variant_spec(self.data, {**self.fixed, **row.values}, self.shape)
        path = emitted_path(self.staging, Path(self.spec).stem, row.variant, self.total)
        write_atomically(path, spec_text(spec, header))


def _write_plot(
    path: Path, rows: list[Row], name: str, total: int, defaults: dict[str, int] | None
) -> None:
    from .backends.sweep_files import plot

    kept = sum(r.status == "kept" for r in rows)
    title = f"{name}: {kept:,} of {total:,} variants kept"
    write_atomically(path, plot(rows, title, defaults))
    print(f"wrote {path}", file=sys.stderr)


def _sweep_file(file: str) -> SweepFile | None:
    """The sweep file, or None with its diagnostics printed."""
    path = Path(file)
    try:
        doc = parse(read_text(path, file), file)
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    except SpecError as exc:
        print_diagnostics(exc.diagnostics, "stderr")
        return None
    data = doc.data if doc.data is not None else {}
    diags = Diagnostics()
    if not isinstance(data, dict):
        diags.error("CG601", "a sweep file is a mapping", doc.where(()), _SWEEP_KEYS)
    else:
        try:
            return SweepFile.model_validate(data)
        except ValidationError as exc:
            pydantic_errors.report(exc.errors(), data, (), doc, diags, "sweep file", _fields_at)
    print_diagnostics([dataclasses.replace(d, code="CG601") for d in diags.items()], "stderr")
    return None


_SWEEP_KEYS = "keys: grid, dist, sample, seed, where, set, input"


def _fields_at(path: Sequence[str | int]) -> list[str]:
    return ["grid", "dist", "sample", "seed", "where", "set", "input"] if not path else []


def _space(args: argparse.Namespace, written: SweepFile) -> Space:
    grid = dict(written.grid)
    for item in args.grid:
        key, values = _pair(item, "--grid", "KEY=V1,V2,...")
        try:
            grid[key] = grid_values(values, lambda text: parse(text, "--grid").data)
        except (SpaceError, SpecError) as exc:
            raise UsageError(f"CG602 --grid {key}: {_message(exc)}") from None
    distributions = dict(written.dist)
    for item in args.dist:
        key, text = _pair(item, "--dist", "KEY=DISTRIBUTION")
        distributions[key] = text
    space = Space(
        grid,
        distributions,
        args.sample if args.sample is not None else written.sample,
        args.seed if args.seed is not None else written.seed,
    )
    try:
        space.check()
    except SpaceError as exc:
        raise UsageError(f"CG602 {_message(exc)}") from None
    return space


def _pair(item: str, flag: str, form: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{flag} expects {form}, got '{item}'")
    return key.strip(), value


def _message(exc: SpaceError | SpecError) -> str:
    if isinstance(exc, SpecError):
        return exc.diagnostics[0].message
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def _declared_params(doc: Document) -> list[str]:
    params = doc.data.get("params") if isinstance(doc.data, dict) else None
    return list(params) if isinstance(params, dict) else []


def _where(text: str | None, declared: Sequence[str]) -> Where | None:
    if text is None:
        return None
    try:
        return Where(text, declared)
    except expr.ExprError as exc:
        raise _where_error(exc) from None


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib: pip install 'cnngraph[plot]' (or matplotlib)"
        ) from None


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """stdout, or a file that appears whole when the sweep ends."""
    if path is None:
        yield sys.stdout
        return
    with atomic_output(Path(path)) as stream:
        yield stream
