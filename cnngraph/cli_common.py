"""What the commands share: usage errors, the arguments that name a spec's params and input,
diagnostics on the terminal, and files written whole or not at all."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import source
from .errors import Diagnostic, SpecError, format_github, format_text
from .source import parse


class UsageError(Exception):
    """A mistake in the command line itself (exit status 2)."""


class Formatter(argparse.HelpFormatter):
    """argparse's help layout, measuring the terminal once: argparse makes a formatter for
    every argument declared, and each asked for the terminal's size (15 ms per run)."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("width", _terminal_width())
        super().__init__(prog, **kwargs)


@functools.cache
def _terminal_width() -> int:
    return shutil.get_terminal_size().columns - 2  # as argparse computes it


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a model param (repeatable); VALUE is YAML: 10, 0.5, true, [1, 2]",
    )


def input_shape(text: str) -> tuple[int, ...]:
    """`3x224x224`, or as a spec writes it: `3,224,224` or `[3, 224, 224]`."""
    parts = text.strip().strip("[]()").replace(",", "x").replace(" ", "").lower().split("x")
    if not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not like 3x224x224")
    dims = tuple(int(p) for p in parts)
    if len(dims) not in (1, 3) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': give CxHxW or F, all positive")
    return dims


def param_overrides(items: Sequence[str]) -> dict[str, Any]:
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


def _source_lines(file: str) -> list[str]:
    try:
        return source.read_text(Path(file), file).splitlines()
    except (SpecError, OSError, UnicodeDecodeError):
        return []


def print_diagnostics(diagnostics: Sequence[Diagnostic], fmt: str) -> None:
    lines: dict[str, list[str]] = {}
    for d in diagnostics:
        if fmt == "github":
            print(format_github(d))
        else:
            file = d.location.file
            if file not in lines:
                lines[file] = _source_lines(file)
            print(format_text(d, lines[file]), file=sys.stderr if fmt == "stderr" else sys.stdout)


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write a file whole or not at all (see `atomic_output`)."""
    with atomic_output(path, binary=True) as stream:
        stream.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_output(path: Path, binary: bool = False) -> Iterator[Any]:
    """A stream whose text becomes `path` when the block ends without an error: written to a
    temporary file beside it, then renamed, so there is never a half-written file and an
    earlier one stays if the work fails. A device or a pipe (`-o /dev/stdout`) is written to
    directly: renaming over it would replace it."""
    text: dict[str, Any] = {} if binary else {"encoding": "utf-8", "newline": ""}
    mode = "wb" if binary else "w"
    name: str | None = None
    try:
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            out = open(path, mode, **text)  # noqa: SIM115 - closed below, after the work
        else:
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            out = open(handle, mode, **text)  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with out:
            yield out  # the work's own errors (a broken pipe) pass through as they are
        if name is not None:
            try:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(name, 0o666 & ~umask)  # as any new file, not mkstemp's private 0600
                os.replace(name, path)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if name is not None:
            with contextlib.suppress(OSError):
                os.unlink(name)
        raise
