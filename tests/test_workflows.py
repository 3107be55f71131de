"The GitHub workflows and hook configuration, checked by real linters that run offline."
import pytest
from conftest import ROOT, console_script, run

WORKFLOWS = sorted((ROOT/".github"/"workflows").glob("*.yaml"))


def test_there_are_test_deploy_pipeline_and_promotion_workflows():
    assert {p.name for p in WORKFLOWS} == {"test.yaml", "deploy.yaml", "pipeline.yaml", "promoted.yaml"}


def test_workflows_match_githubs_schema():
    result = run([console_script("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                  *map(str, WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_zizmor():
    result = run([console_script("zizmor"), "--offline", "--no-progress", str(ROOT/".github"/"workflows")])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("workflow,needles", [
    ("test.yaml", ["bash .ci/run", "runs/default", "runs/ci-lr", "~/.cache/wine_nb"]),
    ("deploy.yaml", ["nbdev_docs", "_docs", "deploy-pages", "pages: write"]),
    ("pipeline.yaml", ["dvc repro", "dvc status", "dvc metrics show", "params.yaml", "dvc.lock", "**/*.dvc",
                       "upload-artifact"]),
    ("promoted.yaml", ["repository_dispatch", "model-promoted", "workflow_dispatch", "wandb artifact get",
                       ".ci/smoke.py"]),
])
def test_workflows_do_what_the_project_needs(workflow, needles):
    text = (ROOT/".github"/"workflows"/workflow).read_text()
    assert all(n in text for n in needles)


def test_pre_commit_config_is_valid():
    result = run([console_script("pre-commit"), "validate-config", str(ROOT/".pre-commit-config.yaml")])
    assert result.returncode == 0, result.stdout + result.stderr
