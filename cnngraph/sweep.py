"""Sweeps: many variants of one spec's params, compiled and counted without torch.

Each variant is compiled as `cnngraph summary` would compile it (a `Compiler` reads the spec
once per process and keeps what does not depend on the params). A variant that does not
compile is a row with its first diagnostic, never a failure of the sweep. `--where` keeps the
variants whose figures satisfy an expression over the metrics and the model's params.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from . import expr
from .errors import SpecError, did_you_mean
from .model import Compiler, Model, without_gc
from .ops import Shape
from .passes.sizes import describe
from .space import Space

METRICS = ("params", "macs", "flops", "activations", "num_layers")
BATCH = 512  # variants handed to the workers at a time: a long sweep is never all in memory


@dataclass
class Row:
    """One variant: its swept values, and its figures or the reason it does not compile."""

    variant: int
    values: dict[str, Any]
    status: str = "kept"  # "kept", "rejected" (by --where) or "invalid"
    metrics: dict[str, int] = field(default_factory=dict)
    output_shape: Any = None
    input_sizes: str | None = None
    model_params: dict[str, Any] = field(default_factory=dict)  # every model-level param
    code: str | None = None
    message: str | None = None


class Evaluator:
    """Compiles variants of one spec in this process."""

    def __init__(
        self,
        spec: str | Path | Mapping[str, Any],
        fixed: Mapping[str, Any],
        input_shape: Shape | None,
        sizes: bool,
    ) -> None:
        self.compiler = Compiler(spec)
        self.fixed = dict(fixed)
        self.input_shape = input_shape
        self.sizes = sizes

    def __call__(self, job: tuple[int, dict[str, Any]]) -> Row:
        # The collector stays off until the variant's model is freed: freed by reference
        # counts, its objects never reach a collection (one per variant otherwise).
        with without_gc():
            return self._evaluate(job)

    def _evaluate(self, job: tuple[int, dict[str, Any]]) -> Row:
        index, values = job
        row = Row(index, values)
        try:
            model = self.compiler.load({**self.fixed, **values}, self.input_shape)
        except SpecError as exc:
            first = next((d for d in exc.diagnostics if d.is_error), exc.diagnostics[0])
            row.status, row.code = "invalid", first.code
            row.message = f"{first.message} ({first.location})"
            return row
        row.metrics = metrics(model)
        output = model.output_shape
        row.output_shape = (
            {k: list(v) for k, v in output.items()} if isinstance(output, dict) else list(output)
        )
        if self.sizes:
            row.input_sizes = describe(model.input_size_rules)
        row.model_params = dict(model.graph.params)
        return row


def metrics(model: Model) -> dict[str, int]:
    from .backends.summary import activations

    return {
        "params": model.params,
        "macs": model.macs,
        "flops": 2 * model.macs,
        "activations": activations(model),
        "num_layers": len(model.layers),
    }


class Where:
    """A `--where` expression over the metrics and the model's params."""

    def __init__(self, text: str, names: Iterable[str]) -> None:
        self.text = expr.source_of(text) or text
        known = set(METRICS) | set(names)
        expr.compile_expression(self.text)  # syntax errors now, with their code
        for name in expr.free_names(self.text):
            if name not in known:
                hint = did_you_mean(name, sorted(known)) or f"names: {', '.join(sorted(known))}"
                raise expr.ExprError("CG302", f"unknown name '{name}'", hint)

    def __call__(self, row: Row) -> bool:
        value = expr.evaluate(self.text, {**row.model_params, **row.values, **row.metrics})
        if not isinstance(value, bool):
            raise expr.ExprError(
                "CG302",
                f"it must be true or false, got {value!r}",
                "compare, e.g. --where 'macs <= 400e6 and params < 6e6'",
            )
        return value


_WORKER: Evaluator | None = None


def _start_worker(args: tuple[Any, ...]) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, once
    _WORKER = Evaluator(*args)


def _work(job: tuple[int, dict[str, Any]]) -> Row:
    assert _WORKER is not None
    return _WORKER(job)


def run(
    space: Space,
    evaluator_args: tuple[Any, ...],
    where: Where | None,
    jobs: int,
    progress: Progress,
) -> Iterator[Row]:
    """Every variant's row, in variant order; on `jobs` processes when more than one."""
    variants = enumerate(space.variants())
    if jobs <= 1:
        evaluate: Callable[[tuple[int, dict[str, Any]]], Row] = Evaluator(*evaluator_args)
        for job in variants:
            yield progress.seen(_judged(evaluate(job), where))
        return
    pool = multiprocessing.get_context().Pool(jobs, _start_worker, (evaluator_args,))
    try:
        while batch := list(islice(variants, BATCH)):
            chunk = max(1, len(batch) // (4 * jobs))
            for row in pool.imap(_work, batch, chunksize=chunk):
                yield progress.seen(_judged(row, where))
        pool.close()
    finally:
        pool.terminate()  # at once, also when the caller stops early (an error, Ctrl-C)
        pool.join()


def _judged(row: Row, where: Where | None) -> Row:
    if row.status == "kept" and where is not None and not where(row):
        row.status = "rejected"
    return row


class Progress:
    """A status line on a terminal (`\\r`-updated, at most every 0.2 s), and the totals."""

    def __init__(self, total: int, stream: TextIO | None = None, show: bool | None = None) -> None:
        self.total = total
        self.stream = sys.stderr if stream is None else stream  # the one in use now
        self.show = self.stream.isatty() if show is None else show
        self.start = time.perf_counter()
        self.last = 0.0
        self.counts: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()

    def seen(self, row: Row) -> Row:
        self.counts[row.status] += 1
        if row.code:
            self.codes[row.code] += 1
        now = time.perf_counter()
        if self.show and now - self.last > 0.2:
            self.last = now
            done = sum(self.counts.values())
            rate = done / max(now - self.start, 1e-9)
            self.stream.write(
                f"\rsweep: {done:,}/{self.total:,} variants ({rate:,.0f}/s), "
                f"{self.counts['kept']:,} kept"
            )
            self.stream.flush()
        return row

    def finish(self) -> str:
        """The closing line: how many, how fast, and why variants were left out."""
        if self.show:
            self.stream.write("\r" + " " * 70 + "\r")
        elapsed = time.perf_counter() - self.start
        done = sum(self.counts.values())
        parts = [f"{self.counts['kept']:,} kept"]
        if self.counts["rejected"]:
            parts.append(f"{self.counts['rejected']:,} left out by --where")
        if self.counts["invalid"]:
            codes = ", ".join(f"{c} x{n:,}" for c, n in self.codes.most_common(4))
            parts.append(f"{self.counts['invalid']:,} do not compile ({codes})")
        rate = done / max(elapsed, 1e-9)
        what = "variant" if done == 1 else "variants"
        return f"swept {done:,} {what} in {elapsed:.1f} s ({rate:,.0f}/s): " + ", ".join(parts)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
