"The docs as nbdev builds them (everything up to Quarto's render): every exported name documented on its page."
import importlib
import inspect
import json
import os
import re
import stat
import sysconfig
from pathlib import Path

import pytest
from conftest import console_script, run
from fastcore.docments import docments
from test_project import copy_project


def _modules() -> dict:
    "Each exporting notebook's name → the module it exports to (its `default_exp`)."
    found = {}
    for nb in sorted((Path(__file__).parents[1]/"nbs").glob("*.ipynb")):
        first = "".join(json.loads(nb.read_text())["cells"][0]["source"])
        if first.startswith("#| default_exp "): found[nb.stem] = "wine_nb." + first.split()[-1]
    return found

MODULES = _modules()


def environment() -> list:
    "What an install changes: each installed distribution's metadata folder and .pth file in site-packages, and when."
    packages = Path(sysconfig.get_paths()["purelib"])
    return sorted((p.name, p.stat().st_mtime_ns) for p in packages.iterdir() if p.suffix in (".dist-info", ".pth"))


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """The notebooks after `nbdev_proc_nbs` (Quarto itself is absent here: a stand-in satisfies nbdev's check for it,
    which also keeps nbdev from re-installing the project into the active environment, as it does without Quarto)."""
    project = copy_project(tmp_path_factory.mktemp("docs"))
    bin_dir = project/"bin"; bin_dir.mkdir()
    fake = bin_dir/"quarto"
    fake.write_text("#!/bin/sh\necho 'quarto is not installed here' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    before = environment()
    result = run([console_script("nbdev_proc_nbs"), "--n_workers", "1"], cwd=project, env={"PATH": path})
    assert result.returncode == 0, result.stderr[-3000:]
    assert environment() == before, "processing the docs changed the installed packages"
    return project/"_proc"


def page_text(path) -> tuple:
    "(all markdown and source text, markdown outputs of show_doc cells) of a processed notebook."
    nb = json.loads(path.read_text())
    sources = "\n".join("".join(c["source"]) for c in nb["cells"])
    outputs = "\n".join("".join(o.get("data", {}).get("text/markdown", ""))
                        for c in nb["cells"] for o in c.get("outputs", []))
    return sources + "\n" + outputs, outputs


def test_every_module_has_its_page(processed):
    for page in MODULES: assert (processed/f"{page}.ipynb").exists()


@pytest.mark.parametrize("page,module", MODULES.items())
def test_every_exported_name_is_on_its_page(processed, page, module):
    text, shown = page_text(processed/f"{page}.ipynb")
    mod = importlib.import_module(module)
    missing = [n for n in mod.__all__ if not re.search(rf"\b{re.escape(n)}\b", text)]
    assert not missing, f"{page}: exported but not on the page: {missing}"
    documented = [n for n in mod.__all__ if callable(getattr(mod, n))]
    no_doc_block = [n for n in documented if f"### {n}" not in shown]
    assert not no_doc_block, f"{page}: no show_doc block for {no_doc_block}"


def _own_parameters(obj):
    target = obj.__init__ if inspect.isclass(obj) and not hasattr(obj, "__dataclass_fields__") else obj
    target = getattr(target, "__wrapped__", target)
    return [p for p in inspect.signature(target).parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


@pytest.mark.parametrize("module", MODULES.values())
def test_every_exported_function_has_a_docstring_and_documented_parameters(module):
    mod = importlib.import_module(module)
    problems = []
    for name in mod.__all__:
        obj = getattr(mod, name)
        is_def = inspect.isfunction(obj) or inspect.isclass(obj)
        if not is_def or getattr(obj, "__module__", module) != module: continue
        if not inspect.getdoc(obj): problems.append(f"{name}: no docstring")
        if issubclass(obj, BaseException) if inspect.isclass(obj) else False: continue
        comments = docments(obj, full=False)
        undocumented = [p.name for p in _own_parameters(obj) if not comments.get(p.name)]
        if undocumented: problems.append(f"{name}: parameters without a docment comment: {undocumented}")
    assert not problems, "\n".join(problems)
