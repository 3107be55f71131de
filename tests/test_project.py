"The project as nbdev sees it: notebooks and library in sync, clean notebooks, notebook tests, docs config, README."
import configparser
import os
import re
import shutil
import stat
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, console_script, run


def copy_project(dest: Path) -> Path:
    "What nbdev reads: settings, notebooks, library, docs config (its symlink kept as a symlink), tests/pg.py."
    for name in ("settings.ini", "_quarto.yml", "README.md"): shutil.copy2(ROOT/name, dest/name)
    ignored = shutil.ignore_patterns(".ipynb_checkpoints", "_*", "sidebar.yml", "nbdev.yml")
    shutil.copytree(ROOT/"nbs", dest/"nbs", symlinks=True, ignore=ignored)
    shutil.copy(ROOT/"nbs"/"_quarto.yml", dest/"nbs"/"_quarto.yml", follow_symlinks=False)
    shutil.copytree(ROOT/"wine_nb", dest/"wine_nb", ignore=shutil.ignore_patterns("__pycache__"))
    (dest/"tests").mkdir()
    shutil.copy2(ROOT/"tests"/"pg.py", dest/"tests"/"pg.py")  # the prediction log's examples import it, as docs do
    return dest


def snapshot(folder: Path, pattern: str) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.glob(pattern))}


def test_nbdev_export_regenerates_the_library_unchanged(tmp_path):
    project = copy_project(tmp_path)
    before = snapshot(project, "wine_nb/*.py")
    result = run([console_script("nbdev_export")], cwd=project)
    assert result.returncode == 0, result.stderr
    after = snapshot(project, "wine_nb/*.py")
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"notebooks and library are out of sync; run nbdev_export and commit: {changed}"


def test_nbdev_clean_leaves_the_notebooks_unchanged(tmp_path):
    project = copy_project(tmp_path)
    before = snapshot(project, "nbs/*.ipynb")
    result = run([console_script("nbdev_clean")], cwd=project)
    assert result.returncode == 0, result.stderr
    changed = sorted(k for k, v in snapshot(project, "nbs/*.ipynb").items() if before[k] != v)
    assert not changed, f"notebooks are not clean; run nbdev_clean and commit: {changed}"
    tags = [c.metadata.get("tags") for c in nbformat.read(project/"nbs"/"03_training.ipynb", as_version=4).cells]
    assert ["parameters"] in tags


def test_settings_keep_papermill_tags_and_name_test_flags():
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT/"settings.ini")
    d = cfg["DEFAULT"]
    assert "tags" in d["allowed_cell_metadata_keys"].split()
    assert {"notest", "slow"} <= set(d["tst_flags"].split())
    assert d["min_python"] == "3.10" and d["lib_name"] == "wine_nb"
    assert "nbdev==2.4.14" in d["dev_requirements"].split()


def test_every_notebook_passes_nbdev_test(tmp_path):
    "Every notebook, its slow cells too (a plain `nbdev_test`, the inner loop, skips them)."
    result = run([console_script("nbdev_test"), "--n_workers", "2", "--timing", "--flags", "slow"],
                 env={"WINE_NB_RUNS_DIR": str(tmp_path/"runs")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "Success" in result.stdout + result.stderr
    assert any((tmp_path/"runs").iterdir()), "the training notebook should have written a run folder"


def quickstart_commands(markdown: str) -> list:
    "The fenced sh commands of the '## Quickstart' section."
    section = markdown.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_readme_and_docs_home_carry_the_same_quickstart():
    readme = quickstart_commands((ROOT/"README.md").read_text())
    index = nbformat.read(ROOT/"nbs"/"index.ipynb", as_version=4)
    docs = quickstart_commands("\n".join(c.source for c in index.cells if c.cell_type == "markdown"))
    assert len(readme) == 2 and readme == docs
    assert "papermill nbs/03_training.ipynb" in readme[0]
    assert "pip install -c constraints.txt torch==2.13.0" in readme[0]
    assert "pytest" in readme[1]


def test_ci_runs_the_readme_commands():
    ci = (ROOT/".ci"/"run").read_text()
    assert "quickstart" in ci.lower() and "README.md" in ci


def test_top_level_quarto_config_is_the_one_nbdev_processes(tmp_path):
    "nbdev 2 reads nbs/_quarto.yml: it links to the top-level file, and nbdev_proc_nbs copies that content into _proc."
    assert (ROOT/"nbs"/"_quarto.yml").is_symlink() and os.readlink(ROOT/"nbs"/"_quarto.yml") == "../_quarto.yml"
    project = copy_project(tmp_path)
    bin_dir = tmp_path/"bin"; bin_dir.mkdir()
    fake = bin_dir/"quarto"  # nbdev only checks that Quarto exists before processing; rendering is not done here
    fake.write_text("#!/bin/sh\necho 'quarto is not installed here' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    result = run([console_script("nbdev_proc_nbs"), "--n_workers", "1"], cwd=project,
                 env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (project/"_proc"/"_quarto.yml").read_text() == (ROOT/"_quarto.yml").read_text()
    assert (project/"nbs"/"_quarto.yml").read_text() == (ROOT/"_quarto.yml").read_text()
    assert {"00_data.ipynb", "02_train.ipynb", "index.ipynb"} <= {p.name for p in (project/"_proc").iterdir()}


def test_library_notebooks_and_scripts_pass_ruff():
    "ruff with the project's own rule set (pyproject.toml), over everything it covers: library, notebooks, scripts."
    result = run([console_script("ruff"), "check", "--output-format", "concise", "."])
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_library_passes_mypy():
    "mypy with the project's configuration (pyproject.toml: the `wine_nb` package)."
    result = run([console_script("mypy")])
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Success" in result.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT/"benchmarks").glob("*.py")))
def test_benchmark_scripts_import_and_explain_themselves(script):
    "Benchmarks are not run in CI (they measure, they do not pass or fail), but they must stay runnable."
    result = run([sys.executable, str(ROOT/"benchmarks"/script), "--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
