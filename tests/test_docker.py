"""The Dockerfiles, read and linted (no Docker engine here): slim CPU images installed from constraints.txt, a
non-root user, a health check, only files that exist, and hadolint's approval."""
import json
import re

import pytest
from conftest import ROOT, console_script, run

DOCKERFILES = [ROOT/"docker"/f"{name}.Dockerfile" for name in ("serve", "train")]


def instructions(text: str) -> list:
    "The Dockerfile's instructions, continuation lines joined, comments and blank lines left out."
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [line.strip() for line in "\n".join(lines).replace("\\\n", " ").splitlines()]


def hadolint(*paths) -> tuple:
    "hadolint's exit code and findings (JSON) for the given Dockerfiles."
    result = run([console_script("hadolint"), "--format", "json", *map(str, paths)])
    return result.returncode, json.loads(result.stdout or "[]")


@pytest.mark.parametrize("name", ["serve", "train"])
def test_dockerfile_is_slim_cpu_only_and_non_root(name):
    text = (ROOT/"docker"/f"{name}.Dockerfile").read_text()
    lines = instructions(text)
    assert lines[0] == "FROM python:3.11-slim"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt torch==2.13.0" in text
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    uid = re.search(r"useradd [^&]*--uid (\d+)", text).group(1)
    assert users[-1] == uid, "the image runs as the user it creates, by number (a name may not resolve on the host)"
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT/source).exists(), f"{name}.Dockerfile copies missing {source}"
    assert ("HEALTHCHECK" in text and "/health" in text) == (name == "serve")


@pytest.mark.parametrize("name", ["serve", "train"])
def test_every_install_in_the_image_uses_the_pinned_versions(name):
    "Each pip install takes its versions from constraints.txt, copied into the image before the first install."
    lines = instructions((ROOT/"docker"/f"{name}.Dockerfile").read_text())
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    assert installs, "the image installs wine_nb with pip"
    assert all("-c constraints.txt" in lines[i] for i in installs), [lines[i] for i in installs]
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ") and "constraints.txt" in line.split()[1:-1]]
    assert copies and copies[0] < installs[0]


def test_the_build_context_leaves_out_environments_and_data():
    ignored = (ROOT/".dockerignore").read_text().split()
    assert {".venv", "runs", "*.csv", ".git"} <= set(ignored)
    assert "constraints.txt" not in ignored


def test_the_serve_image_serves_the_default_run_on_all_interfaces():
    text = (ROOT/"docker"/"serve.Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
    assert cmd == '["wine_serve", "--model", "/app/runs/default", "--host", "0.0.0.0", "--port", "8000"]'


def test_both_dockerfiles_pass_hadolint():
    code, findings = hadolint(*DOCKERFILES)
    assert (code, findings) == (0, []), findings


def test_hadolint_finds_the_faults_of_a_careless_dockerfile(tmp_path):
    "The linter the workflow runs does find faults: a floating base image, unpinned apt packages, root, shell CMD."
    bad = tmp_path/"Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nUSER root\nCMD python app.py\n")
    code, findings = hadolint(bad)
    assert code != 0
    assert {"DL3007", "DL3008", "DL3002", "DL3025"} <= {f["code"] for f in findings}, findings
    assert {f["line"] for f in findings if f["code"] == "DL3002"} == {3}
