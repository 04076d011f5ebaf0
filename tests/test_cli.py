"""The command line as users run it: exit codes, formats, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnngraph.cli import main

from .conftest import SPECS

BAD = (
    "cnngraph: 1\nname: bad\ninput: [3, 8, 8]\nlayers:\n"
    "  c: {op: conv2d, out_channels: 4, kernal_size: 3}\n"
)


@pytest.fixture
def bad_spec(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_validate_directory_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """The spec library validates with warnings as errors, as a CI job would run it."""
    code, out, _ = run(capsys, "validate", "--strict", str(SPECS))
    assert code == 0
    assert out.count("ok  ") == len(list(SPECS.glob("*.yaml")))
    assert "0 error(s)" in out


def test_validate_reports_file_line_col(capsys: pytest.CaptureFixture[str], bad_spec: Path) -> None:
    code, out, _ = run(capsys, "validate", str(bad_spec), str(SPECS / "resnet18.yaml"))
    assert code == 1
    assert f"{bad_spec}:5:36: error CG201: c (conv2d): unknown field 'kernal_size'" in out
    assert "hint: did you mean 'kernel_size'?" in out
    assert "^" in out  # the caret under the offending text
    assert "2 file(s): 1 ok, 1 with errors" in out


def test_validate_github_format(capsys: pytest.CaptureFixture[str], bad_spec: Path) -> None:
    code, out, _ = run(capsys, "validate", "--format", "github", str(bad_spec))
    assert code == 1
    assert f"::error file={bad_spec},line=5,col=36,title=CG201::" in out


def test_github_properties_cannot_be_injected_by_a_file_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`,` and `:` in a property value are escaped (GitHub's workflow-command rules), so a file
    named `a,line=9::x.yaml` annotates itself, not line 9 of another file."""
    path = tmp_path / "a,line=9::x%.yaml"
    path.write_text(BAD)
    code, out, _ = run(capsys, "validate", "--format", "github", str(path))
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("::error "))
    props = line.split("::")[1]
    assert "a%2Cline=9%3A%3Ax%25.yaml" in props
    assert props.count(",") == 3  # file, line, col, title


def test_validate_json_format(capsys: pytest.CaptureFixture[str], bad_spec: Path) -> None:
    code, out, _ = run(
        capsys, "validate", "--format", "json", str(bad_spec), str(SPECS / "resnet18.yaml")
    )
    report = json.loads(out)
    assert code == 1
    assert report["errors"] >= 1
    files = {Path(f["file"]).name: f for f in report["files"]}
    assert files["resnet18.yaml"]["params"] == 11_689_512
    assert files["bad.yaml"]["diagnostics"][0]["code"] in {"CG201", "CG203"}


def test_validate_glob(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(SPECS / "resnet*.yaml"))
    assert code == 0 and "2 file(s)" in out


def test_validate_strict_fails_on_warnings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(
        "cnngraph: 1\nname: w\ninput: [4]\nblocks:\n  spare: {layers: [relu]}\nlayers: [relu]\n"
    )
    assert run(capsys, "validate", str(path))[0] == 0
    code, out, _ = run(capsys, "validate", "--strict", str(path))
    assert code == 1
    assert "1 file(s): 0 ok, 1 failed (--strict); 0 error(s), 1 warning(s)" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("validate", "no/such/file.yaml"),
        ("validate",),
        ("summary",),
        ("frobnicate",),
        ("summary", "no/such.yaml"),
        ("summary", str(SPECS / "resnet18.yaml"), "--input", "3x0"),
        ("summary", str(SPECS / "resnet18.yaml"), "--depth", "zero"),
        ("summary", str(SPECS / "resnet18.yaml"), "--set", "num_classes"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "error" in err and "Traceback" not in err


def test_summary_json_matches_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", str(SPECS / "resnet.yaml"), "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["params"], data["macs"]) == (25_557_032, 4_089_184_256)
    assert data["output_shape"] == [1000]
    assert data["flops"] == 2 * data["macs"]
    assert sum(r["params"] for r in data["layers"] if r["kind"] == "layer") == data["params"]
    assert data["input_sizes"]["H"]["min"] == 1


def test_summary_depth_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "summary",
        str(SPECS / "resnet18.yaml"),
        "--depth",
        "1",
        "--set",
        "num_classes=10",
        "--input",
        "3x64x64",
    )
    assert code == 0
    assert "layer1.0" not in out and "layer1 " in out
    assert "Output shape:  [10]" in out
    assert "resnet18: input [3, 64, 64]" in out


@pytest.mark.parametrize("shape", ["3x64x64", "3,64,64", "[3, 64, 64]", "3X64X64"])
def test_input_is_written_as_the_cli_or_a_spec_writes_it(
    capsys: pytest.CaptureFixture[str], shape: str
) -> None:
    code, out, _ = run(capsys, "summary", str(SPECS / "resnet18.yaml"), "--input", shape)
    assert code == 0 and "resnet18: input [3, 64, 64]" in out


def test_summary_json_of_a_broken_spec_is_the_validate_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cnngraph: 1\nname: b\ninput: [3, 8, 8]\nlayers:\n  c: {op: conv2}\n")
    code, out, _ = run(capsys, "summary", str(path), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["errors"] == 1 and report["files"][0]["ok"] is False
    assert report["files"][0]["diagnostics"][0]["code"] == "CG204"
    _, validated, _ = run(capsys, "validate", str(path), "--format", "json")
    assert json.loads(validated)["files"][0]["diagnostics"] == report["files"][0]["diagnostics"]


def test_a_repeat_of_a_chosen_block_is_labelled_by_the_block(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`block: $block` repeated: the summary names the block the param chose."""
    code, out, _ = run(capsys, "summary", str(SPECS / "resnet.yaml"), "--depth", "1")
    assert code == 0
    assert "bottleneck x3" in out and "$block" not in out
    code, out, _ = run(
        capsys, "summary", str(SPECS / "resnet.yaml"), "--depth", "1", "--set", "block=basic"
    )
    assert "basic x3" in out


def test_summary_json_depth(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "summary", str(SPECS / "resnet18.yaml"), "--json", "--depth", "1")
    assert {r["depth"] for r in json.loads(out)["layers"]} == {1}


def test_summary_of_a_bad_spec(capsys: pytest.CaptureFixture[str], bad_spec: Path) -> None:
    code, out, err = run(capsys, "summary", str(bad_spec))
    assert code == 1 and out == ""
    assert "CG201" in err


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0
    assert schema["title"] == "cnngraph spec"
    assert "conv2d" in json.dumps(schema)
