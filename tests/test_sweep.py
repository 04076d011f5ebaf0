"""`cnngraph sweep`: every row equals the compiler's own figures for those params; sampling is
reproducible whatever the number of processes; bad sweeps are diagnosed before any work."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnngraph
from cnngraph.cli import main
from cnngraph.space import Space, SpaceError, parse_distribution

from .conftest import SPECS
from .test_cli import run

ANYNET_SPACE = (
    "stages=[[int(1, 4), log_int(8, 256, 8), choice(1, 2, 4, 8, 16), choice(1.0, 0.5)]] * 4"
)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_grid_rows_are_the_compilers_figures(capsys: pytest.CaptureFixture[str]) -> None:
    spec = SPECS / "mobilenet_v2.yaml"
    code, out, err = run(
        capsys, "sweep", str(spec), "--grid", "width_mult=0.5,1.0", "--grid", "num_classes=10,1000"
    )
    assert code == 0, err
    table = rows(out)
    assert [(r["values.width_mult"], r["values.num_classes"]) for r in table] == [
        ("0.5", "10"),
        ("0.5", "1000"),
        ("1.0", "10"),
        ("1.0", "1000"),
    ]
    for row in table:
        params = {"width_mult": float(row["values.width_mult"])}
        params["num_classes"] = int(row["values.num_classes"])
        model = cnngraph.load(spec, params=params)
        assert row["status"] == "kept"
        assert (int(row["params"]), int(row["macs"])) == (model.params, model.macs)
        assert int(row["flops"]) == 2 * model.macs
        assert json.loads(row["output_shape"]) == [params["num_classes"]]
        assert row["input_sizes"] == "H, W >= 1"
    assert "swept 4 variants" in err and "4 kept" in err


def test_samples_are_reproducible_and_the_same_on_two_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Draws happen in one process in a fixed order: `--jobs 2` writes the same file."""
    args = ["sweep", str(SPECS / "anynet.yaml"), "--sample", "12", "--seed", "3"]
    args += ["--dist", ANYNET_SPACE, "--no-sizes"]
    outputs = []
    for jobs, name in (("1", "a.jsonl"), ("2", "b.jsonl"), ("1", "c.jsonl")):
        assert run(capsys, *args, "--jobs", jobs, "-o", str(tmp_path / name))[0] == 0
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1] == outputs[2]
    records = [json.loads(line) for line in outputs[0].splitlines()]
    assert [r["variant"] for r in records] == list(range(12))
    # variants that do not compile are rows with their code, not failures of the sweep
    for record in records:
        stages = record["values"]["stages"]
        try:
            model = cnngraph.load(SPECS / "anynet.yaml", params={"stages": stages})
        except cnngraph.SpecError as exc:
            assert record["status"] == "invalid"
            assert record["code"] == exc.diagnostics[0].code and record["params"] is None
        else:
            assert record["status"] == "kept" and record["params"] == model.params


def test_where_keeps_variants_and_emitted_specs_compile_to_their_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "variants"
    code, text, err = run(
        capsys,
        "sweep",
        str(SPECS / "resnet.yaml"),
        "--grid",
        "layers=[2, 2, 2, -1],[2, 2, 2, 2],[2, 3, 4, 2],[3, 4, 6, 3]",
        "--where",
        "params < 20e6 and layers[0] < 3",
        "--emit",
        str(out),
        "--input",
        "3x64x64",
    )
    assert code == 0, err
    table = rows(text)
    # a stage of -1 blocks: a row, with its code
    assert [r["status"] for r in table] == ["invalid", "kept", "kept", "rejected"]
    assert table[0]["code"] == "CG305" and "resnet.yaml:" in table[0]["message"]
    emitted = sorted(out.iterdir())
    assert [p.name for p in emitted] == ["resnet-1.yaml", "resnet-2.yaml"]
    for path, row in zip(emitted, table[1:3], strict=True):
        assert main(["validate", "--strict", str(path)]) == 0
        model = cnngraph.load(path)
        assert (model.params, model.macs) == (int(row["params"]), int(row["macs"]))
        assert model.input_shape == (3, 64, 64)
        assert path.read_text().startswith("# variant")
    assert "1 left out by --where" in err and "1 do not compile (CG305 x1)" in err


def test_a_plot_of_params_against_macs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "space.png"
    args = ["sweep", str(SPECS / "efficientnet.yaml"), "--grid", "width_mult=0.5,0.75,1.0"]
    assert run(capsys, *args, "--where", "macs < 300e6", "--plot", str(png), "--no-sizes")[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--dist", "width_mult=normal(0, 1)", "--sample", "3"], "CG602", "unknown distribution"),
        (["--dist", "width_mult=int(1.5, 4)", "--sample", "3"], "CG602", "takes integers"),
        (["--dist", "width_mult=uniform(0.5, 1)"], "CG602", "--sample N"),
        (["--grid", "widht_mult=0.5,1.0"], "CG603", "did you mean 'width_mult'"),
        (["--grid", "width_mult=0.5", "--where", "mac < 1"], "CG604", "did you mean 'macs'"),
        (["--grid", "width_mult=0.5", "--where", "macs"], "CG604", "true or false"),
        (["--grid", "width_mult=0.5", "--where", "macs <"], "CG604", "cannot parse"),
        ([], None, "nothing to vary"),
        (["--dist", "width_mult=sorted([[1], 2])", "--sample", "2"], "CG602", "compare"),
        (["--dist", "width_mult=sorted(3)", "--sample", "2"], "CG602", "takes a list"),
        (["--dist", f"num_classes=int(1, {10**400})", "--sample", "2"], "CG602", "integers"),
        (["--dist", "width_mult=[[int(1, 2)] * 1000] * 1000", "--sample", "1"], "CG602", "over"),
        (["--grid", "width_mult=0.5", "-o", "missing/rows.csv"], None, "no directory"),
        (["--grid", "width_mult=0.5", "--plot", "missing/p.png"], None, "no directory"),
        (["--grid", "width_mult=0.5", "--jobs", "-3"], None, "expected 0 or a positive"),
    ],
)
def test_bad_sweeps_are_usage_errors_before_any_work(
    capsys: pytest.CaptureFixture[str], args: list[str], code: str | None, expected: str
) -> None:
    status, out, err = run(capsys, "sweep", str(SPECS / "mobilenet_v2.yaml"), *args)
    assert status == 2 and out == "" and "Traceback" not in err
    assert expected in err and (code is None or code in err)


def test_a_failing_where_leaves_no_output_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--where holds on the spec's defaults (num_classes 10) and fails on a later variant:
    no rows file replaces the earlier one, and no spec is emitted."""
    target = tmp_path / "out.csv"
    target.write_text("earlier\n")
    args = ["sweep", str(SPECS / "lenet5.yaml"), "--grid", "num_classes=3,2", "-o", str(target)]
    args += ["--emit", str(tmp_path / "kept")]
    status, _, err = run(capsys, *args, "--where", "params // (num_classes - 2) > 0")
    assert status == 2 and "CG604" in err and "division by zero" in err
    assert target.read_text() == "earlier\n" and list(tmp_path.iterdir()) == [target]


def test_a_param_without_a_default_can_be_swept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spec at its defaults does not compile (`w` has none), each variant does; a text
    given on the command line stays text in the emitted spec (`$$` in the file)."""
    spec = tmp_path / "req.yaml"
    spec.write_text(
        "cnngraph: 1\nname: req\ninput: [3, 8, 8]\n"
        "params: {w: int, act: relu, other: silu}\n"
        "layers:\n  c: {op: conv2d, out_channels: $w, kernel_size: 3}\n"
        "  a: {op: $act, if: \"${act != '$other'}\"}\n"
    )
    args = ["sweep", str(spec), "--grid", "w=4,8", "--grid", "act=relu,$other"]
    code, out, err = run(capsys, *args, "--emit", str(tmp_path / "kept"))
    assert code == 0, err
    table = rows(out)
    # the text `$other` is not the param `other`: the `if` compares texts, and skips `a`
    assert [(r["status"], r["values.act"]) for r in table] == [
        ("kept", "relu"),
        ("kept", "$other"),
        ("kept", "relu"),
        ("kept", "$other"),
    ]
    emitted = sorted((tmp_path / "kept").iterdir())
    assert "act: $$other" in emitted[1].read_text()
    for path, row in zip(emitted, table, strict=True):
        model = cnngraph.load(path)
        assert (model.params, len(model.layers)) == (int(row["params"]), int(row["num_layers"]))


def test_sweep_file_inputs_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "space.yaml"
    sweep.write_text("grid: {num_classes: [10]}\ninput: [3, -5, 5]\n")
    code, _, err = run(capsys, "sweep", str(SPECS / "lenet5.yaml"), "--file", str(sweep))
    assert code == 1 and f"{sweep}:2:" in err and "CG601" in err


def test_a_sweep_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "space.yaml"
    sweep.write_text(
        "grid: {width_mult: [0.5, 1.0]}\n"
        "dist: {num_classes: 'choice(10, 100)'}\n"
        "sample: 2\nseed: 1\nwhere: macs < 150e6\n"
    )
    code, out, err = run(capsys, "sweep", str(SPECS / "mobilenet_v2.yaml"), "--file", str(sweep))
    assert code == 0, err
    assert [r["status"] for r in rows(out)] == ["kept", "kept", "rejected", "rejected"]
    sweep.write_text("grid: {width_mult: [0.5]}\nsamples: 2\n")
    code, _, err = run(capsys, "sweep", str(SPECS / "mobilenet_v2.yaml"), "--file", str(sweep))
    assert code == 1 and f"{sweep}:2:1" in err and "CG601" in err and "'sample'" in err


def test_an_output_that_is_a_pipe_stays_a_pipe(tmp_path: Path) -> None:
    """`-o /dev/stdout` or a named pipe is written to; renaming a file over it would replace
    the device (as root, /dev/null itself)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert main(["build", str(SPECS / "lenet5.yaml"), "-o", str(fifo)]) == 0
    reader.join(timeout=30)
    assert fifo.is_fifo() and b"class " in received[0]


@given(st.integers(1, 50), st.integers(0, 200), st.integers(1, 16), st.integers(0, 2**32))
def test_integer_draws_stay_in_range_on_their_step(
    low: int, span: int, step: int, seed: int
) -> None:
    high = low + span
    rng = random.Random(seed)
    for form in ("int", "log_int"):
        try:
            draw = parse_distribution(f"{form}({low}, {high}, {step})")
        except SpaceError as exc:
            assert "no multiple" in exc.message  # no multiple of step in [low, high]
            assert not any(n % step == 0 for n in range(low, high + 1))
            continue
        for _ in range(20):
            value = draw(rng)
            assert low <= value <= high and value % step == 0, (form, value)


def test_uniform_draws_stay_finite_and_in_range() -> None:
    rng = random.Random(0)
    draw = parse_distribution("uniform(-9e18, 9e18)")
    assert all(-9e18 <= draw(rng) <= 9e18 for _ in range(200))
    with pytest.raises(SpaceError, match="takes numbers"):  # no layer size is that large
        parse_distribution("uniform(-1e308, 1e308)")


def test_distributions_compose() -> None:
    rng = random.Random(0)
    draw = parse_distribution("sorted([log_int(8, 1024, 8)] * 4)")
    for _ in range(50):
        widths = draw(rng)
        assert widths == sorted(widths) and len(widths) == 4
    pair = parse_distribution("[choice('relu', 'silu'), uniform(0.1, 0.2), -3, true, null]")
    act, p, n, flag, nothing = pair(rng)
    assert act in ("relu", "silu") and 0.1 <= p <= 0.2 and (n, flag, nothing) == (-3, True, None)
    space = Space({"a": [1, 2]}, {"b": "int(0, 9)"}, samples=3, seed=5)
    first, again = list(space.variants()), list(space.variants())
    assert first == again and len(first) == 6 and [v["a"] for v in first] == [1, 1, 1, 2, 2, 2]


def test_sampled_anynets_count_as_torchvisions_regnet_builder_does() -> None:
    """Rows of a sampled AnyNetX space against torchvision's own RegNet class, built from the
    same stage depths, widths, group widths and bottleneck ratios (with its width fitting)."""
    regnet = pytest.importorskip("torchvision.models.regnet")
    space = Space(
        {}, {"stages": ANYNET_SPACE.split("=", 1)[1], "se_ratio": "choice(0.0, 0.25)"}, 6, 7
    )
    for values in space.variants():
        model = cnngraph.load(SPECS / "anynet.yaml", params=values, input_shape=(3, 64, 64))
        stages = values["stages"]
        depths, widths, groups, ratios = ([stage[i] for stage in stages] for i in range(4))
        widths, groups = regnet.BlockParams._adjust_widths_groups_compatibilty(
            widths, ratios, groups
        )
        se = values["se_ratio"] or None
        params = regnet.BlockParams(depths, widths, groups, ratios, [2] * 4, se)
        reference = regnet.RegNet(params)
        assert model.params == sum(p.numel() for p in reference.parameters()), values


def test_a_sweep_where_nothing_compiles_fails_and_emits_into_empty_directories_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(SPECS / "efficientnet.yaml")
    code, out, err = run(capsys, "sweep", spec, "--grid", "width_mult=a,b")
    assert code == 1 and "0 kept, 2 do not compile (CG307 x2)" in err
    assert "no variant compiles" in err and len(rows(out)) == 2
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "earlier.yaml").write_text("cnngraph: 1\n")
    args = ["sweep", spec, "--grid", "width_mult=0.5", "--emit", str(tmp_path / "kept")]
    code, out, err = run(capsys, *args)
    assert code == 2 and "not empty" in err and out == ""
    code, _, err = run(capsys, "sweep", spec, "--grid", "width_mult=0.5", "--where", "mac < 1")
    assert code == 2 and err.count("--where") == 1, err
