"""The reference documents cover every op, init scheme and diagnostic code; the tutorial
holds."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

import cnngraph
from cnngraph.errors import CODES
from cnngraph.ops import OPS
from cnngraph.spec import INIT_SCHEMES

from .conftest import ROOT

LANGUAGE = (ROOT / "docs" / "spec-language.md").read_text()
DIAGNOSTICS = (ROOT / "docs" / "diagnostics.md").read_text()
PYTORCH = (ROOT / "docs" / "pytorch.md").read_text()


@pytest.mark.parametrize("kind", sorted(OPS))
def test_every_op_is_documented(kind: str) -> None:
    assert re.search(rf"`{re.escape(kind)}`", LANGUAGE), f"{kind} missing from spec-language.md"


def test_every_init_scheme_is_documented() -> None:
    rows = re.findall(r"^  \| (`.*?`) \|", PYTORCH, re.MULTILINE)
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row)}
    assert documented == set(INIT_SCHEMES)


def test_every_code_is_documented() -> None:
    documented = set(re.findall(r"^\| (CG\d{3}) \|", DIAGNOSTICS, re.MULTILINE))
    assert documented == set(CODES)


TUTORIAL = (ROOT / "docs" / "tutorial-anynet.md").read_text()


def _tutorial_variant() -> str:
    """specs/anynet.yaml with the tutorial's edits: its stage table, its name."""
    original = (ROOT / "specs" / "anynet.yaml").read_text()
    table = re.search(r"  stages: >-\n.*?\]\}\n", original, re.DOTALL)
    assert table is not None and table.group(0) in TUTORIAL  # the rule the tutorial shows
    new_table = re.search(r"  stages: \[\[2, .*?\]\]\n", TUTORIAL, re.DOTALL)
    assert new_table is not None
    variant = original.replace(table.group(0), new_table.group(0))
    return variant.replace("name: anynet", "name: my_anynet")


def _missing_value(variant: str) -> str:
    """The tutorial's broken table: the third row without its bottleneck ratio."""
    assert "[6,    200,   24,          1.0]" in variant
    return variant.replace("[6,    200,   24,          1.0]", "[6,    200,   24]")


def test_the_anynet_tutorial_figures_hold(tmp_path: Path) -> None:
    """The tutorial's edits, and the figures and diagnostic it prints."""
    tutorial = TUTORIAL
    variant = _tutorial_variant()
    model = cnngraph.load(variant)
    assert f"{model.params:,} params" in tutorial and f"MACs:          {model.macs:,}" in tutorial
    bad = tmp_path / "bad.yaml"
    bad.write_text(_missing_value(variant))
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(bad)
    first = info.value.diagnostics[0]
    assert first.code == "CG304" and first.message in tutorial
    # a group width that does not divide the width is fitted, as the tutorial says
    assert model.layer("trunk_output.block3.block3-0.f.b.0").shape[0] == 192


def test_the_idioms_in_the_language_doc_compile() -> None:
    text = (ROOT / "docs" / "spec-language.md").read_text()
    idioms = text.split("### Idioms", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```yaml\n(.*?)```", idioms, re.DOTALL)
    assert len(snippets) == 3
    for snippet in snippets:
        cnngraph.load(snippet)


def _console(doc: str, command: str) -> list[str]:
    """The output a doc shows under `$ command` (its `...` lines stand for omitted ones)."""
    block = doc.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() != "..."]


def test_the_readme_commands_print_what_it_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnngraph.cli import main

    readme = (ROOT / "README.md").read_text()
    monkeypatch.chdir(ROOT)
    assert main(["summary", "specs/resnet.yaml", "--depth", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = _console(readme, "cnngraph summary specs/resnet.yaml --depth 1")
    assert shown and all(line in printed for line in shown), set(shown) - set(printed)

    # "A copy of specs/resnet18.yaml with one typo, `kernal_size`"
    bad = tmp_path / "specs" / "bad.yaml"
    bad.parent.mkdir()
    typo = (
        (ROOT / "specs" / "resnet18.yaml")
        .read_text()
        .replace("kernel_size: 3, stride: $stride", "kernal_size: 3, stride: $stride", 1)
    )
    bad.write_text(typo)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "specs/bad.yaml"]) == 1
    captured = capsys.readouterr()
    printed = (captured.err + captured.out).splitlines()
    assert _console(readme, "cnngraph validate specs/bad.yaml") == printed


def test_the_readme_python_figures_hold() -> None:
    model = cnngraph.load(
        ROOT / "specs" / "resnet.yaml", params={"num_classes": 10}, input_shape=(3, 160, 160)
    )
    readme = (ROOT / "README.md").read_text()
    figures = f"# {model.params}, {model.macs}, {model.output_shape}"
    assert figures in readme
    assert f"# {model.layer('layer1.0.conv2').shape}" in readme


def test_the_anynet_tutorial_commands_print_what_it_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each command of the tutorial, run where the reader runs it, on the files it makes."""
    from cnngraph.cli import main

    tutorial = TUTORIAL
    variant = _tutorial_variant()
    (tmp_path / "my_anynet.yaml").write_text(variant)
    (tmp_path / "bad.yaml").write_text(_missing_value(variant))
    monkeypatch.chdir(tmp_path)
    for command, code in [
        ("cnngraph validate my_anynet.yaml", 0),
        ("cnngraph validate bad.yaml", 1),
        ("cnngraph summary my_anynet.yaml --depth 2", 0),
        ("cnngraph build my_anynet.yaml -o my_anynet.py", 0),
    ]:
        assert main(command.split()[1:]) == code, command
        captured = capsys.readouterr()
        printed = (captured.out + captured.err).splitlines()
        assert printed == _console(tutorial, command), command
    assert main(["summary", "my_anynet.yaml", "--input", "3,160,160"]) == 0
    assert main(["render", "my_anynet.yaml", "--depth", "2", "-o", "my_anynet.svg"]) == 0
    assert (tmp_path / "my_anynet.svg").read_text().startswith("<?xml")


def test_the_ci_step_and_the_pre_commit_hook_validate_specs_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's workflow step passes on the library; the pre-commit hook's command, on the
    files its pattern selects, checks specs and leaves other YAML alone."""
    import yaml

    from cnngraph.cli import main

    readme = (ROOT / "README.md").read_text()
    workflow = yaml.safe_load(readme.split("# .github/workflows/specs.yml\n", 1)[1].split("```")[0])
    step = workflow["jobs"]["specs"]["steps"][-1]["run"]
    monkeypatch.chdir(ROOT)
    assert step.startswith("cnngraph validate") and main(step.split()[1:]) == 0

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "cnngraph-validate" and hook["language"] == "python"
    (tmp_path / "net.yaml").write_text((ROOT / "specs" / "lenet5.yaml").read_text())
    (tmp_path / ".pre-commit-config.yaml").write_text("repos:\n  - repo: local\n")
    (tmp_path / "chart.yaml").write_text("a: [1, 2\n")  # not a spec, not even valid YAML
    (tmp_path / "notes.txt").write_text("cnngraph: 1\n")
    files = [p.name for p in sorted(tmp_path.iterdir()) if re.search(hook["files"], p.name)]
    assert files == [".pre-commit-config.yaml", "chart.yaml", "net.yaml"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main([*hook["entry"].split()[1:], *files]) == 0
    assert "1 file(s): 1 ok" in capsys.readouterr().out


def test_pre_commit_runs_the_hook_on_changed_specs(tmp_path: Path) -> None:
    """pre-commit itself, on a temporary repository, with the hook as `.pre-commit-hooks.yaml`
    declares it (only `language: system`, so that the cnngraph installed here runs instead of
    one pre-commit would install from the network): a broken spec fails the commit with its
    diagnostic, other YAML and valid specs pass."""
    import subprocess
    import sys

    import yaml

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    repo = tmp_path / "repo"
    repo.mkdir()
    config = {"repos": [{"repo": "local", "hooks": [{**hook, "language": "system"}]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    (repo / "net.yaml").write_text((ROOT / "specs" / "lenet5.yaml").read_text())
    (repo / "chart.yaml").write_text("a: [1, 2\n")  # other YAML, not even valid
    broken = (ROOT / "specs" / "lenet5.yaml").read_text().replace("kernel_size", "kernal_size", 1)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
    }

    def pre_commit(*files: str) -> subprocess.CompletedProcess[str]:
        run = [sys.executable, "-m", "pre_commit", "run", "--files", *files]
        return subprocess.run(run, cwd=repo, env=env, capture_output=True, text=True, check=False)

    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    passed = pre_commit("net.yaml", "chart.yaml", ".pre-commit-config.yaml")
    assert passed.returncode == 0 and "cnngraph validate" in passed.stdout, passed.stdout
    (repo / "net.yaml").write_text(broken)
    failed = pre_commit("net.yaml", "chart.yaml")
    assert failed.returncode == 1 and "CG201" in failed.stdout and "kernal_size" in failed.stdout


def test_the_sweeps_page_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/sweeps.md, as a reader runs it: the sweep (its closing line, but for the time it
    took), the sweep file (the same rows, on two processes), the snippet that picks a
    candidate (what it prints), and the summary and build of that candidate."""
    from cnngraph.cli import main

    page = (ROOT / "docs" / "sweeps.md").read_text()
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    monkeypatch.chdir(tmp_path)
    command = re.search(r"\$ (cnngraph sweep .*)\n", page)
    assert command is not None
    assert main(shlex.split(command.group(1))[1:]) == 0
    captured = capsys.readouterr()

    def untimed(lines: list[str]) -> list[str]:
        return [re.sub(r" in [\d.]+ s \([\d,]+/s\)", "", line) for line in lines]

    printed = (captured.out + captured.err).splitlines()
    assert untimed(_console(page, command.group(1))) == untimed(printed)
    assert (tmp_path / "anynet-400mf.png").read_bytes()[:4] == b"\x89PNG"

    written = re.search(r"```yaml\n# ([\w.-]+): (cnngraph [^\n]*)\n(.*?)```", page, re.S)
    assert written is not None
    (tmp_path / written.group(1)).write_text(written.group(3))
    again = [*shlex.split(written.group(2))[1:], "--jobs", "2", "-o", "again.csv"]
    assert main(again) == 0
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "anynet-400mf.csv").read_text()

    snippet = re.search(r"```python\n(.*?)```", page, re.S)
    assert snippet is not None
    exec(compile(snippet.group(1), "sweeps.md", "exec"), {})
    shown = re.search(r"\n# (.*)\n```", snippet.group(0) + "\n")
    assert shown is not None and capsys.readouterr().out.strip() == shown.group(1)
    commands = re.search(r"```sh\n(cnngraph summary .*?)```", page, re.S)
    assert commands is not None
    for line in commands.group(1).splitlines():
        assert main(shlex.split(line)[1:]) == 0, line
    emitted = cnngraph.load(tmp_path / "kept" / "anynet-064.yaml")
    assert f"{emitted.params} {emitted.macs}" in shown.group(1)
    assert (tmp_path / "candidate.py").read_text().startswith("# 'anynet', generated")
