"""Hostile inputs through the command line, each in a child process bounded in memory, with
its CPU time measured: every case ends with exit 0, 1 or 2 (never an internal error), within
2 s of CPU and 512 MB, and says what is wrong with a code, at a line and column where the
input has them. Specs the validator accepts build into modules that import and run."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import re
import resource
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnngraph
from cnngraph.cli import main

from .conftest import SPECS

CPU_SECONDS = 2.0
MEMORY = 512 * 2**20
HEAD = "cnngraph: 1\nname: t\ninput: [3, 8, 8]\n"


def _spec(layers: str, extra: str = "") -> str:
    return HEAD + extra + "layers:\n" + layers


def _expr(text: str, extra: str = "") -> str:
    return _spec(f'  c: {{op: conv2d, out_channels: "${{{text}}}", kernel_size: 1}}\n', extra)


def _many(n: int, line: Callable[[int], str]) -> str:
    return "".join(line(i) for i in range(n))


@dataclass
class Case:
    files: dict[str, str | bytes]  # written into an empty directory; "-" names a FIFO
    args: list[str]
    code: str | None  # a code the output must show; None: none needed (exit 0)
    exit: int = 1
    located: bool = True  # the diagnostic with `code` has a line and a column
    not_in_output: tuple[str, ...] = ()
    special: dict[str, str] = field(default_factory=dict)  # name -> "fifo" or "dir"


BLOCK_BOMB = (
    HEAD
    + "blocks:\n"
    + _many(3, lambda i: f"  b{i}: {{layers: [{{block: b{i + 1}, repeat: 1000}}]}}\n")
)
BLOCK_BOMB += "  b3: {layers: [{op: relu, if: false}, {op: relu, repeat: 0}]}\n"
BLOCK_BOMB += "layers:\n  x: {block: b0}\n"

CASES: dict[str, Case] = {
    # ---- sizes and input-size analysis
    "a 16-megapixel input": Case(
        {"s.yaml": (SPECS / "resnet18.yaml").read_text()},
        ["summary", "s.yaml", "--input", "3x16000000x16000000"],
        "CG508",
    ),
    "a linear on an unflattened 8-gigapixel input": Case(
        {"s.yaml": _spec("  fc: {op: linear, out_features: 2}\n")},
        ["summary", "s.yaml", "--input", "1x90000x90000"],
        "CG505",
    ),
    "a million-pixel pooling window": Case(
        {
            "s.yaml": "cnngraph: 1\nname: t\ninput: [1, 60000, 60000]\nlayers:\n"
            "  p: {op: max_pool2d, kernel_size: 59999, stride: 3}\n"
        },
        ["summary", "s.yaml"],
        None,
        exit=0,
    ),
    "a million-pixel input": Case(
        {"s.yaml": "cnngraph: 1\nname: t\ninput: [3, 1000000, 1000000]\nlayers:\n  r: relu\n"},
        ["validate", "s.yaml"],
        "CG508",
    ),
    "a linear with 2**48 weights": Case(
        {
            "s.yaml": "cnngraph: 1\nname: t\ninput: [16777216]\nlayers:\n"
            "  l: {op: linear, out_features: 16777216}\n"
        },
        ["validate", "s.yaml"],
        "CG508",
    ),
    # ---- quadratic work
    "5,000 unused layers": Case(
        {"s.yaml": _spec(_many(5000, lambda i: f"  d{i}: {{op: relu, from: input}}\n"))},
        ["validate", "s.yaml"],
        "CG404",
        exit=0,
    ),
    "a dead chain with 3,000 dead ends": Case(
        {
            "s.yaml": _spec(
                "  c: {op: relu}\n"
                + _many(3000, lambda i: f"  d{i}: {{op: relu}}\n")
                + _many(3000, lambda i: f"  e{i}: {{op: relu, from: d2999}}\n")
                + "  out: {op: relu, from: c}\n",
                "outputs: {y: out}\n",
            )
        },
        ["validate", "s.yaml"],
        "CG404",
        exit=0,
    ),
    "20,000 params": Case(
        {
            "s.yaml": _spec(
                "  c: {op: conv2d, out_channels: $p0, kernel_size: 1}\n",
                "params:\n" + _many(20000, lambda i: f"  p{i}: {i + 1}\n"),
            )
        },
        ["validate", "s.yaml"],
        None,
        exit=0,
    ),
    "a comprehension over 20,000 params": Case(
        {
            "s.yaml": _expr(
                "len([p0 for a in range(10000) for b in range(10000)])",
                "params:\n" + _many(20000, lambda i: f"  p{i}: {i + 1}\n"),
            )
        },
        ["validate", "s.yaml"],
        "CG304",
    ),
    "long whitespace in a for": Case(
        {"s.yaml": _spec('  r: {op: relu, for: "x in $' + " " * 100000 + 'y"}\n')},
        ["validate", "s.yaml"],
        "CG301",
    ),
    "3,000 unknown fields": Case(
        {"s.yaml": _spec(_many(3000, lambda i: f"  l{i}: {{op: relu, bogus{i}: 1}}\n"))},
        ["validate", "s.yaml"],
        "CG001",
    ),
    "3,000 references to nothing": Case(
        {"s.yaml": _spec(_many(3000, lambda i: f"  l{i}: {{op: relu, from: zz{i}}}\n"))},
        ["validate", "s.yaml"],
        "CG401",
    ),
    "blocks calling blocks a thousand times, all switched off": Case(
        {"s.yaml": BLOCK_BOMB}, ["validate", "s.yaml"], "CG311"
    ),
    "a billion layers": Case(
        {
            "s.yaml": HEAD + "blocks:\n  b1: {layers: {x: {op: relu, repeat: 1000}}}\n"
            "  b2: {layers: {x: {block: b1, repeat: 1000}}}\n"
            "layers:\n  x: {block: b2, repeat: 1000}\n"
        },
        ["validate", "s.yaml"],
        "CG311",
    ),
    "5,000 outputs": Case(
        {
            "s.yaml": _spec(_many(5000, lambda i: f"  l{i}: {{op: relu, from: input}}\n"))
            + "outputs: ["
            + ", ".join(f"l{i}" for i in range(5000))
            + "]\n"
        },
        ["validate", "s.yaml"],
        None,
        exit=0,
    ),
    "a names template of 200,000 characters": Case(
        {"s.yaml": _spec("  r: {op: relu, repeat: 1000, names: '" + "{i}" * 70000 + "'}\n")},
        ["validate", "s.yaml"],
        "CG202",
    ),
    # ---- expression work
    "a sum of 4,000 lists": Case(
        {"s.yaml": _expr("len(sum([[1]*4000]*4000, []))")}, ["validate", "s.yaml"], "CG304"
    ),
    "ranges in a comprehension": Case(
        {"s.yaml": _expr("len([range(10000) for x in range(10000)])")},
        ["validate", "s.yaml"],
        "CG304",
    ),
    "nested comprehensions": Case(
        {"s.yaml": _expr("len([y for x in range(10000) for y in range(10000)])")},
        ["validate", "s.yaml"],
        "CG304",
    ),
    "lists aliasing lists": Case(
        {"s.yaml": _expr("len([[[1]*9999]*9999]*9999)")}, ["validate", "s.yaml"], "CG304"
    ),
    "comparing aliased lists": Case(
        {"s.yaml": _expr("[[[1]*99]*99]*99 == [[[1]*99]*99]*99")},
        ["validate", "s.yaml"],
        "CG304",
    ),
    "the minimum of big lists": Case(
        {"s.yaml": _expr("len(min([[x]*10000 for x in range(10000)]))")},
        ["validate", "s.yaml"],
        "CG304",
    ),
    "a format width of 10**10": Case(
        {"s.yaml": _expr("len('%10000000000d' % 1)")}, ["validate", "s.yaml"], "CG304"
    ),
    "a zero-padded format width": Case(
        {"s.yaml": _expr("len('%0999999999d' % 1)")}, ["validate", "s.yaml"], "CG304"
    ),
    "a format precision of 10**10": Case(
        {"s.yaml": _expr("len('%.10000000000f' % 1)")}, ["validate", "s.yaml"], "CG304"
    ),
    "a billion-character string": Case(
        {"s.yaml": _expr("len('x' * 10**9)")}, ["validate", "s.yaml"], "CG304"
    ),
    "2 ** 10 ** 10": Case({"s.yaml": _expr("2**10**10")}, ["validate", "s.yaml"], "CG304"),
    "a 499-term sum": Case(
        {"s.yaml": _expr("+".join(["1"] * 499))}, ["validate", "s.yaml"], "CG301"
    ),
    "900 unary minuses": Case({"s.yaml": _expr("-" * 900 + "4")}, ["validate", "s.yaml"], "CG301"),
    # ---- reading
    "YAML base-60 integers": Case(
        {
            "s.yaml": _spec(
                "  c: {op: conv2d, out_channels: "
                + ":".join(["59"] * 20000)
                + ", kernel_size: 1}\n"
            )
        },
        ["validate", "s.yaml"],
        "CG101",
    ),
    "a 5,000-digit hex integer": Case(
        {
            "s.yaml": _spec(
                "  c: {op: conv2d, out_channels: 0x" + "f" * 5000 + ", kernel_size: 1}\n"
            )
        },
        ["validate", "s.yaml"],
        "CG101",
    ),
    "a 5,000-digit integer in JSON": Case(
        {
            "s.json": '{"cnngraph": 1, "name": "t", "input": [3, 8, 8], "layers": '
            '{"c": {"op": "conv2d", "out_channels": ' + "9" * 5000 + ', "kernel_size": 1}}}'
        },
        ["validate", "s.json"],
        "CG101",
    ),
    "a 5,000-digit --set value": Case(
        {
            "s.yaml": _spec(
                "  c: {op: conv2d, out_channels: $w, kernel_size: 1}\n", "params: {w: 4}\n"
            )
        },
        ["summary", "s.yaml", "--set", "w=0x" + "f" * 5000],
        None,
        exit=2,
    ),
    "/dev/zero": Case({}, ["validate", "/dev/zero"], "CG100", located=False),
    "/dev/zero to summary": Case({}, ["summary", "/dev/zero"], "CG100", located=False),
    "a FIFO": Case({}, ["validate", "f.yaml"], "CG100", located=False, special={"f.yaml": "fifo"}),
    "a FIFO to build": Case(
        {}, ["build", "f.yaml"], "CG100", located=False, special={"f.yaml": "fifo"}
    ),
    "a file over the size limit": Case(
        {"s.yaml": _spec("  c: {op: relu}\n") + "#" * 600_000 + "\n"},
        ["validate", "s.yaml"],
        "CG105",
        located=False,
    ),
    "billion laughs": Case(
        {
            "s.yaml": _spec("  c: {op: relu}\n")
            + "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + _many(9, lambda i: f"x{i + 1}: &a{i + 1} [{', '.join([f'*a{i}'] * 10)}]\n")
        },
        ["validate", "s.yaml"],
        "CG105",
    ),
    "a mapping merging itself": Case(
        {"s.yaml": HEAD + "params: &a {x: 1, <<: *a}\nlayers: [relu]\n"},
        ["validate", "s.yaml"],
        "CG101",
    ),
    "a long name looked up 3,000 times": Case(
        {
            "s.yaml": HEAD
            + "description: &b "
            + "x" * 100_000
            + "\nlayers:\n"
            + _many(3000, lambda i: f"  l{i}: {{op: *b}}\n")
        },
        ["validate", "s.yaml"],
        "CG204",
    ),
    "a self-referencing alias": Case(
        {"s.yaml": HEAD + "layers: &a [*a]\n"}, ["validate", "s.yaml"], "CG101"
    ),
    "10,000 nested brackets": Case(
        {"s.yaml": HEAD + "layers: " + "[" * 10000 + "]" * 10000 + "\n"},
        ["validate", "s.yaml"],
        "CG105",
    ),
    "nested brackets in JSON": Case(
        {"s.json": '{"cnngraph": 1, "layers": ' + "[" * 5000 + "]" * 5000 + "}"},
        ["validate", "s.json"],
        "CG105",
    ),
    "a control character": Case(
        {"s.yaml": HEAD.replace("name: t", "name: t\x01x") + "layers:\n  c: {op: relu}\n"},
        ["validate", "s.yaml"],
        "CG101",
    ),
    "an empty file": Case({"s.yaml": "# nothing\n"}, ["validate", "s.yaml"], "CG202"),
    "a date as the name": Case(
        {"s.yaml": HEAD.replace("name: t", "name: 2024-05-01") + "layers:\n  c: {op: relu}\n"},
        ["validate", "s.yaml"],
        None,
        exit=0,
    ),
    "a JSON file with a byte order mark": Case(
        {
            "s.json": '\ufeff{"cnngraph": 1, "name": "t", "input": [3, 8, 8], '
            '"layers": {"c": {"op": "relu"}}}'
        },
        ["validate", "s.json"],
        None,
        exit=0,
    ),
    "a Unicode name": Case(
        {"s.yaml": _spec("  café: {op: relu}\n")}, ["validate", "s.yaml"], "CG202"
    ),
    # ---- values
    "an infinite upsampling factor": Case(
        {"s.yaml": _spec("  u: {op: upsample, scale_factor: .inf}\n")},
        ["validate", "s.yaml"],
        "CG202",
    ),
    "a NaN upsampling factor": Case(
        {"s.yaml": _spec("  u: {op: upsample, scale_factor: .nan}\n")},
        ["validate", "s.yaml"],
        "CG202",
    ),
    "an infinite negative slope": Case(
        {"s.yaml": _spec("  a: {op: leaky_relu, negative_slope: -.inf}\n")},
        ["validate", "s.yaml"],
        "CG202",
    ),
    "500 nested block calls": Case(
        {
            "s.yaml": HEAD
            + "blocks:\n"
            + _many(500, lambda i: f"  b{i}:\n    layers:\n      - {{block: b{i + 1}}}\n")
            + "  b500:\n    layers:\n      - {op: relu}\nlayers:\n  x: {block: b0}\n"
        },
        ["validate", "s.yaml"],
        "CG309",
    ),
    # ---- what reaches the terminal, and files
    "escape codes in the name": Case(
        {"s.yaml": HEAD.replace("name: t", 'name: "t\\e[31mred\\x9b2J"') + "layers:\n  c: relu\n"},
        ["summary", "s.yaml"],
        None,
        exit=0,
        not_in_output=("\x1b", "\x9b"),
    ),
    "escape codes in an unknown op": Case(
        {"s.yaml": _spec('  c: {op: "\\e]0;title\\a"}\n')},
        ["validate", "s.yaml"],
        "CG204",
        not_in_output=("\x1b", "\x07"),
    ),
    "escape codes in --input": Case(
        {"s.yaml": _spec("  c: relu\n")},
        ["summary", "s.yaml", "--input", "3x\x1b[2Jx8"],
        None,
        exit=2,
        not_in_output=("\x1b",),
    ),
}


def _bounded(run: Callable[[], int], connection: multiprocessing.connection.Connection) -> None:
    """In the child: `run` under the memory bound; sends its result and the CPU it took.
    The objects inherited from the test process are frozen: a collection walking them would
    copy their pages and charge the child for the test process's size."""
    gc.freeze()
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (size + MEMORY, size + MEMORY))
    start = resource.getrusage(resource.RUSAGE_SELF)
    try:
        code = run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except MemoryError:
        code = -1
    end = resource.getrusage(resource.RUSAGE_SELF)
    connection.send((code, end.ru_utime - start.ru_utime + end.ru_stime - start.ru_stime))


def _command(case: Case, cwd: str, connection: multiprocessing.connection.Connection) -> None:
    os.chdir(cwd)
    with open("output", "w") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        _bounded(lambda: main(case.args), connection)


def _in_child(target: Callable[..., None], *args: object) -> tuple[int, float]:
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(*args, send))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the command did not end within 30 s")
    assert receive.poll(), f"the child died (exit {child.exitcode})"
    code, cpu = receive.recv()
    return int(code), float(cpu)


def _run(case: Case, directory: Path) -> tuple[int, float, str]:
    for name, content in case.files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for name, kind in case.special.items():
        os.mkfifo(directory / name) if kind == "fifo" else (directory / name).mkdir()
    code, cpu = _in_child(_command, case, str(directory))
    output = (directory / "output").read_text(encoding="utf-8", errors="replace")
    return code, cpu, output


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_ends_in_a_diagnostic(name: str) -> None:
    case = CASES[name]
    with tempfile.TemporaryDirectory() as directory:
        code, cpu, output = _run(case, Path(directory))
    assert code != -1, "ran out of memory"
    assert "Traceback" not in output and "internal error" not in output, output[-2000:]
    assert code == case.exit, output[-2000:]
    assert cpu < CPU_SECONDS, f"{cpu:.2f} s of CPU"
    if case.code is not None:
        pattern = rf"^(?P<where>\S.*?): (error|warning) {case.code}:"
        found = [m["where"] for m in re.finditer(pattern, output, re.MULTILINE)]
        assert found, output[-2000:]
        if case.located:
            assert any(re.search(r":\d+:\d+$", where) for where in found), found
    for text in case.not_in_output:
        assert text not in output


VALID = {
    "a later layer read from inside a block": _spec(
        "  x: {op: relu, from: l1.c}\n  l1: {block: b, from: input}\n"
        "  y: {op: concat, from: [x, l1]}\n",
        "blocks:\n  b:\n    layers:\n      c: {op: conv2d, out_channels: 4, kernel_size: 1}\n"
        "      r: {op: relu}\n",
    ),
    "an add of 300 inputs": _spec(
        _many(300, lambda i: f"  l{i}: {{op: relu, from: input}}\n")
        + "  s: {op: add, from: ["
        + ", ".join(f"l{i}" for i in range(300))
        + "]}\n"
    ),
    "an explicit projection": _spec(
        "  c: {op: conv2d, out_channels: 6, kernel_size: 3, stride: 2, padding: 1}\n"
        "  p: {op: projection, from: [input, c]}\n  a: {op: add, from: [p, c]}\n"
    ),
    "an adaptive pool of nulls": _spec(
        "  a: {op: adaptive_avg_pool2d, output_size: [null, null]}\n"
        "  b: {op: adaptive_max_pool2d, output_size: [null, 4]}\n"
    ),
    "a date as the name": HEAD.replace("name: t", "name: 2024-05-01")
    + "layers:\n  c: {op: relu}\n",
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_accepted_odd_specs_build_and_run(name: str) -> None:
    model = cnngraph.load(VALID[name])
    module = model.to_module().eval()
    with torch.no_grad():
        out = module(torch.randn(1, *model.input_shape))
    assert tuple(out.shape[1:]) == model.output_shape


def test_a_failed_render_keeps_an_existing_dot_file(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(_spec("  c: relu\n"))
    (tmp_path / "s.dot").write_text("mine")
    with contextlib.chdir(tmp_path):
        code = main(["render", "s.yaml", "--format", "pdf"])
    if code == 0:  # a system Graphviz with pdf support: nothing failed
        return
    assert (tmp_path / "s.dot").read_text() == "mine"


ATOMS = [
    "10**9", "2**62", "range(10000)", "[1] * 10000", "'x' * 9999", "in_channels", "w",
    "[[0] * 99] * 99", "1e300", "-1", "0", "'%d'", "[w] * 5000",
]  # fmt: skip
OPERATORS = ["+", "-", "*", "**", "%", "//", "==", "<", "in"]
hostile_expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"[{e} for x in range(1000)]"),
        inner.map(lambda e: f"[x for x in {e} for y in {e}]"),
        inner.map(lambda e: f"sum([{e}] * 100, [])"),
        inner.map(lambda e: f"len({e})"),
        st.tuples(inner, inner).map(lambda t: f"max({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
    ),
    max_leaves=6,
)


def _load(text: str) -> int:
    try:
        cnngraph.load(text)
    except cnngraph.SpecError as exc:
        assert all(d.code.startswith("CG") for d in exc.diagnostics)
        return 1
    return 0


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=hostile_expressions)
def test_hostile_expressions_are_bounded(text: str) -> None:
    """Random combinations of the costly constructs, in a block (where in_channels waits for
    shapes) and at the top level: each compile ends within the bounds, with or without a
    diagnostic."""
    spec = (
        HEAD
        + "params: {w: 3}\nblocks:\n  b:\n    layers:\n"
        + '      - {op: conv2d, out_channels: "${4 if ('
        + text
        + ') == 0 or true else 5}", '
        + "kernel_size: 1}\n"
        + f'      - {{op: relu, inplace: "${{({text}) == 0}}"}}\n'
        + "layers:\n  x: {block: b}\n"
        + f'  y: {{op: relu, inplace: "${{({text}) == 0}}"}}\n'
    )
    code, cpu = _in_child(_bounded_load, spec)
    assert code in (0, 1), "ran out of memory" if code == -1 else code
    assert cpu < CPU_SECONDS, f"{cpu:.2f} s of CPU"


def _bounded_load(text: str, connection: multiprocessing.connection.Connection) -> None:
    _bounded(lambda: _load(text), connection)
