"""The GitHub workflows, the hook configuration and the pinned versions they install (constraints.txt, written by
scripts/lock), checked by real linters that run offline and by reading them."""
import configparser
import os
import re
import shlex
import shutil
import stat

import pytest
import yaml
from conftest import ROOT, console_script, run
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

WORKFLOWS = sorted((ROOT/".github"/"workflows").glob("*.yaml"))
TORCH = "torch==2.13.0"


def workflow(name: str) -> dict:
    "A workflow file as data; YAML 1.1 reads the key `on` as True, so it is put back under 'on'."
    data = yaml.safe_load((ROOT/".github"/"workflows"/name).read_text())
    if True in data: data["on"] = data.pop(True)
    return data


def settings_requirements() -> list:
    "settings.ini's requirements and dev_requirements, split as setup.py splits them."
    config = configparser.ConfigParser(delimiters=["="])
    config.read(ROOT/"settings.ini", encoding="utf-8")
    return [Requirement(r) for key in ("requirements", "dev_requirements") for r in shlex.split(config["DEFAULT"][key])]


def pins(text: str) -> dict:
    "The pins of a constraints file: canonical name -> set of pinned versions (one per Python/platform branch)."
    found: dict = {}
    for line in text.splitlines():
        if line[:1].isalnum():
            requirement = Requirement(line)
            (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            found.setdefault(canonicalize_name(requirement.name), set()).add(version)
    return found


def test_there_are_test_deploy_pipeline_promotion_and_docker_workflows():
    assert {p.name for p in WORKFLOWS} == {"test.yaml", "deploy.yaml", "pipeline.yaml", "promoted.yaml", "docker.yaml"}


def test_workflows_match_githubs_schema():
    result = run([console_script("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                  *map(str, WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_zizmor():
    result = run([console_script("zizmor"), "--offline", "--no-progress", str(ROOT/".github"/"workflows")])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("workflow_name,needles", [
    ("test.yaml", ["bash .ci/run", "runs/default", "runs/ci-lr", "~/.cache/wine_nb", "constraints.txt", "matrix",
                   "nbdev_test", "ruff check", "mypy", "pytest"]),
    ("deploy.yaml", ["nbdev_docs", "_docs", "deploy-pages", "pages: write", "pull_request", "constraints.txt"]),
    ("pipeline.yaml", ["dvc repro", "dvc status", "dvc metrics show", "params.yaml", "dvc.lock", "**/*.dvc",
                       "upload-artifact", "constraints.txt"]),
    ("promoted.yaml", ["repository_dispatch", "model-promoted", "workflow_dispatch", "wandb artifact get",
                       ".ci/smoke.py", "constraints.txt"]),
    ("docker.yaml", ["ghcr.io", "hadolint docker/serve.Dockerfile docker/train.Dockerfile", "packages: write",
                     "docker/setup-buildx-action@", "docker/login-action@", "docker/metadata-action@",
                     "docker/build-push-action@", "secrets.GITHUB_TOKEN"]),
])
def test_workflows_do_what_the_project_needs(workflow_name, needles):
    text = (ROOT/".github"/"workflows"/workflow_name).read_text()
    assert [n for n in needles if n not in text] == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_install_in_ci_uses_the_pinned_versions_and_every_action_a_commit(path):
    "pip installs take constraints.txt, the pip cache is keyed on it, and actions are pinned to a commit SHA."
    text = path.read_text()
    installs = [line for line in text.splitlines() if re.search(r"\bpip install\b", line)]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    assert "cache-dependency-path: settings.ini" not in text
    for action in re.findall(r"uses:\s*(\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), f"{path.name}: {action} is not pinned to a SHA"


def test_the_test_workflow_runs_everything_once_and_a_fast_subset_everywhere():
    jobs = workflow("test.yaml")["jobs"]
    full, fast = jobs["full"], jobs["fast"]
    assert full["runs-on"] == "ubuntu-latest" and "strategy" not in full
    assert [s["run"] for s in full["steps"] if "run" in s] == ["bash .ci/run"]
    assert [s["with"]["python-version"] for s in full["steps"] if "setup-python" in s.get("uses", "")] == ["3.11"]
    matrix = fast["strategy"]["matrix"]
    assert set(matrix["os"]) == {"ubuntu-latest", "macos-latest"} and matrix["python"] == ["3.10", "3.11", "3.12"]
    assert fast["strategy"]["fail-fast"] is False
    for job in (full, fast):
        setup = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))["with"]
        assert (setup["cache"], setup["cache-dependency-path"]) == ("pip", "constraints.txt")
        assert any(s.get("with", {}).get("path") == "~/.cache/wine_nb" for s in job["steps"]), "the UCI data cache"
    install = next(s["run"] for s in fast["steps"] if "pip install" in s.get("run", ""))
    # CPU torch from the PyTorch index on Linux only: macOS takes PyPI's wheel, which has no CUDA
    cpu_index = "https://download.pytorch.org/whl/cpu"
    assert f'if [ "$RUNNER_OS" = Linux ]; then export PIP_EXTRA_INDEX_URL={cpu_index}' in install
    assert full["env"]["PIP_EXTRA_INDEX_URL"] == cpu_index and "PIP_EXTRA_INDEX_URL" not in fast.get("env", {})


def test_pull_requests_build_the_docs_and_only_main_publishes_them():
    docs = workflow("deploy.yaml")
    assert {"push", "pull_request", "workflow_dispatch"} <= set(docs["on"])
    assert docs["on"]["push"]["branches"] == ["main"]
    build, deploy = docs["jobs"]["build"], docs["jobs"]["deploy"]
    assert "if" not in build and deploy["if"] == "github.event_name != 'pull_request'"
    assert "pages" not in build["permissions"] and deploy["permissions"]["pages"] == "write"
    upload = next(s for s in build["steps"] if "upload-pages-artifact" in s.get("uses", ""))
    assert upload["if"] == "github.event_name != 'pull_request'"


def test_images_are_built_on_pull_requests_and_pushed_to_ghcr_on_version_tags():
    docker = workflow("docker.yaml")
    assert docker["on"]["push"] == {"tags": ["v*"]} and "pull_request" in docker["on"]
    assert docker["permissions"] == {}
    jobs = docker["jobs"]
    writers = {name for name, job in jobs.items() if job["permissions"].get("packages") == "write"}
    assert writers == {"push"}, "only the job that pushes may write packages"
    assert "refs/tags/v" in jobs["push"]["if"] and jobs["build"]["if"] == "github.event_name == 'pull_request'"
    for name in ("build", "push"):
        job = jobs[name]
        assert job["strategy"]["matrix"]["image"] == ["serve", "train"] and job["needs"] == "hadolint"
        meta = next(s for s in job["steps"] if "metadata-action" in s.get("uses", ""))
        assert meta["with"]["images"] == "ghcr.io/${{ github.repository }}/${{ matrix.image }}"
        build = next(s for s in job["steps"] if "build-push-action" in s.get("uses", ""))
        assert build["with"]["file"] == "docker/${{ matrix.image }}.Dockerfile"
        assert build["with"]["push"] is (name == "push")
        assert any("login-action" in s.get("uses", "") for s in job["steps"]) == (name == "push")


def stale_pins(pinned: dict, requirements: list) -> list:
    "What a constraints file lacks against the requirements: a package not pinned, or pinned outside its range."
    problems = []
    for requirement in requirements:
        versions = pinned.get(canonicalize_name(requirement.name))
        if not versions: problems.append(f"{requirement.name} is not pinned")
        problems += [f"{requirement.name}=={v} is outside {requirement}" for v in sorted(versions or ())
                     if not requirement.specifier.contains(v, prereleases=True)]
    return problems


def test_constraints_pin_every_requirement_within_settings_ini_and_torch_exactly():
    "constraints.txt is in step with settings.ini: else run scripts/lock and commit the result with the change."
    text = (ROOT/"constraints.txt").read_text()
    assert "#    scripts/lock" in text.splitlines()[:6], "the header says how to regenerate the file"
    pinned = pins(text)
    assert pinned["torch"] == {TORCH.split("==")[1]}
    assert stale_pins(pinned, settings_requirements()) == [], "constraints.txt is stale: run scripts/lock"


def test_the_pin_check_catches_a_stale_lock():
    "What a stale constraints.txt looks like: a package settings.ini gained, a pin below a raised lower bound."
    stale = pins("numpy==2.4.6 ; python_full_version >= '3.11'\nnumpy==2.2.6 ; python_full_version < '3.11'\n"
                 "dvc==3.40.0\n    # via wine-nb\n")
    assert stale == {"numpy": {"2.4.6", "2.2.6"}, "dvc": {"3.40.0"}}
    requirements = [Requirement(r) for r in ("numpy", "dvc>=3.50", "fastapi>=0.110")]
    assert stale_pins(stale, requirements) == ["dvc==3.40.0 is outside dvc>=3.50", "fastapi is not pinned"]


def test_scripts_lock_compiles_settings_ini_and_torch_with_uv(tmp_path):
    "scripts/lock, run on a copy of the project with a stand-in uv that records what it is asked and writes pins."
    (tmp_path/"scripts").mkdir()
    shutil.copy2(ROOT/"scripts"/"lock", tmp_path/"scripts"/"lock")
    shutil.copy(ROOT/"settings.ini", tmp_path/"settings.ini")
    (tmp_path/"constraints.txt").write_text("numpy==2.4.6\n")  # the previous pins, which uv must be shown
    fake = tmp_path/"uv"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$(dirname "$0")/args"\n'
                    'cat > "$(dirname "$0")/stdin"\nout="${@: -1}"\ncp "$out" "$(dirname "$0")/previous"\n'
                    'printf "# This file was autogenerated by uv via the following command:\\n#    scripts/lock\\n'
                    'numpy==2.4.6\\ntorch==2.13.0\\n" > "$out"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    result = run(["bash", str(tmp_path/"scripts"/"lock"), "--upgrade"], cwd=tmp_path, env={"UV": str(fake)})
    assert result.returncode == 0, result.stderr
    args = (tmp_path/"args").read_text().split("\n")
    assert args[:5] == ["pip", "compile", "--universal", "--python-version", "3.10"]
    assert "--upgrade" in args and args[args.index("--custom-compile-command") + 1] == "scripts/lock"
    assert (tmp_path/"stdin").read_text().split() == [str(r) for r in settings_requirements()] + [TORCH]
    assert (tmp_path/"previous").read_text() == "numpy==2.4.6\n"
    written = (tmp_path/"constraints.txt").read_text()
    assert written.startswith("# Pins for every package wine_nb installs") and written.endswith("torch==2.13.0\n")
    assert 'pip install -c constraints.txt torch==2.13.0 -e ".[dev]"' in written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args", "constraints.txt", "previous", "scripts",
                                                         "settings.ini", "stdin", "uv"], "no temporary file left"


def test_scripts_lock_without_uv_says_how_to_get_it_and_changes_nothing(tmp_path):
    (tmp_path/"scripts").mkdir()
    shutil.copy2(ROOT/"scripts"/"lock", tmp_path/"scripts"/"lock")
    (tmp_path/"constraints.txt").write_text("numpy==2.4.6\n")
    result = run(["bash", str(tmp_path/"scripts"/"lock")], cwd=tmp_path, env={"UV": str(tmp_path/"no-such-uv")})
    assert result.returncode == 1 and "pip install uv" in result.stderr
    assert (tmp_path/"constraints.txt").read_text() == "numpy==2.4.6\n"
    assert os.access(ROOT/"scripts"/"lock", os.X_OK), "scripts/lock is executable"


def test_pre_commit_config_is_valid():
    result = run([console_script("pre-commit"), "validate-config", str(ROOT/".pre-commit-config.yaml")])
    assert result.returncode == 0, result.stdout + result.stderr
