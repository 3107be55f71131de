"""The Dockerfiles, read (no Docker engine here): slim CPU images, a non-root user, a health check, and only files
that exist."""
import re

import pytest
from conftest import ROOT


@pytest.mark.parametrize("name", ["serve", "train"])
def test_dockerfile_is_slim_cpu_only_and_non_root(name):
    text = (ROOT/"docker"/f"{name}.Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in text
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT/source).exists(), f"{name}.Dockerfile copies missing {source}"
    assert ("HEALTHCHECK" in text and "/health" in text) == (name == "serve")


def test_the_build_context_leaves_out_environments_and_data():
    ignored = (ROOT/".dockerignore").read_text().split()
    assert {".venv", "runs", "*.csv", ".git"} <= set(ignored)


def test_the_serve_image_serves_the_default_run_on_all_interfaces():
    text = (ROOT/"docker"/"serve.Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
    assert cmd == '["wine_serve", "--model", "/app/runs/default", "--host", "0.0.0.0", "--port", "8000"]'
