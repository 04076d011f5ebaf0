"""`cnngraph sweep` throughput on the AnyNetX design space (the RegNet paper's Sec. 3).

    python benchmarks/sweep_throughput.py [--variants 300] [--total 10000] [--jobs 2]

- in-process, one core: variants compiled and counted per second, with and without the valid
  input sizes (AnyNetX variants average about 300 layers; the spec's default has 248);
- the command line: --total variants with --jobs processes, wall seconds, as a user runs it;
- the kept variants emitted as specs re-validate and compile to their rows' figures.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

from processes import ROOT, prepare, run_process

import cnngraph
from cnngraph.space import Space
from cnngraph.sweep import Evaluator

SPACE = (
    "[[int(1, 16), log_int(8, 1024, 8), choice(1, 2, 4, 8, 16, 32), choice(1.0, 0.5, 0.25)]] * 4"
)
SPEC = ROOT / "specs" / "anynet.yaml"


def in_process(variants: int, sizes: bool) -> tuple[float, float]:
    """Variants per second, and the mean layer count."""
    evaluate = Evaluator(SPEC, {}, None, sizes)
    jobs = list(enumerate(Space({}, {"stages": SPACE}, variants, 0).variants()))
    evaluate(jobs[0])  # warm: imports, the first compile
    start = time.perf_counter()
    rows = [evaluate(job) for job in jobs]
    rate = len(jobs) / (time.perf_counter() - start)
    return rate, statistics.mean(r.metrics["num_layers"] for r in rows if r.metrics)


def command_line(total: int, jobs: int, out: Path) -> float:
    argv = [sys.executable, "-m", "cnngraph", "sweep", str(SPEC), "--sample", str(total)]
    argv += ["--seed", "1", "--dist", f"stages={SPACE}", "--where", "macs <= 400e6"]
    argv += ["--jobs", str(jobs), "-o", str(out / "rows.csv"), "--emit", str(out / "kept")]
    return run_process(argv, prepare())[0]


def emitted_agree(out: Path) -> tuple[int, int]:
    """(kept variants checked, those whose emitted spec compiles to the row's figures)."""
    with (out / "rows.csv").open() as fh:
        kept = [row for row in csv.DictReader(fh) if row["status"] == "kept"]
    agree = 0
    for row, path in zip(kept, sorted((out / "kept").iterdir()), strict=True):
        model = cnngraph.load(path)
        agree += (model.params, model.macs) == (int(row["params"]), int(row["macs"]))
    return len(kept), agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=300, help="in-process, per setting")
    parser.add_argument("--total", type=int, default=10_000, help="for the command line")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"AnyNetX space: {SPACE}")
    for sizes in (True, False):
        rate, layers = in_process(args.variants, sizes)
        what = "with input sizes" if sizes else "without (--no-sizes)"
        print(f"  one core, {what:22}: {rate:6.1f} variants/s (mean {layers:.0f} layers)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        wall = command_line(args.total, args.jobs, out)
        print(
            f"  cnngraph sweep --sample {args.total} --jobs {args.jobs}: {wall:.1f} s "
            f"({args.total / wall:.0f} variants/s)"
        )
        kept, agree = emitted_agree(out)
        print(f"  emitted kept variants compiling to their rows: {agree} of {kept}")


if __name__ == "__main__":
    main()
