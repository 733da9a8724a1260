"""The package's shape: layers a reader can see, modules a reader can finish, a lean student kernel.

`make lint` checks the import directions (import-linter) and the style (ruff); these tests check
what those tools cannot: that every module imports in a student's runtime, that no module has
grown past one sitting, and that nothing is left at the old flat paths.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import course_utils

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_utils"
SUBPACKAGES = (
    "core",
    "data",
    "engine",
    "metrics",
    "viz",
    "detection",
    "segmentation",
    "grading",
    "instructor",
)
MAX_MODULE_LINES = 450
LONG_MODULE_REASON = "This module is long because"
# Notebook tooling: a student's kernel on Colab has none of it installed by the course.
NOTEBOOK_TOOLING = (
    "jupyter",
    "jupyterlab",
    "jupyter_client",
    "jupyter_server",
    "nbclient",
    "nbconvert",
    "nbformat",
    "nbgrader",
    "nbval",
    "notebook",
)
OLD_FLAT_MODULES = (
    "assignments",
    "box_coding",
    "checkpoint",
    "classifiers",
    "colab",
    "conv_arithmetic",
    "data",
    "device",
    "faces",
    "fast_rcnn",
    "fcn",
    "metrics",
    "paths",
    "proposals",
    "rcnn",
    "receptive_field",
    "release",
    "report",
    "results",
    "scenes",
    "selective_search",
    "sliding_window",
    "train",
    "upsampling",
    "validate",
    "viz",
    "checks",
)


def public_modules() -> list[str]:
    """Every module of course_utils whose dotted name has no part starting with '_'."""
    names = []
    for info in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def module_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


IMPORT_WITHOUT_TOOLING = """
import importlib, json, sys
blocked = tuple(json.loads(sys.argv[1]))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not in a student's runtime (blocked by the test)")
        return None

sys.meta_path.insert(0, Blocker())
failed = {}
for module in json.loads(sys.argv[2]):
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - reported below
        failed[module] = f"{type(error).__name__}: {error}"
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(blocked))
print(json.dumps({"failed": failed, "loaded": loaded}))
"""


def test_the_package_has_the_layered_subpackages_each_with_its_rules():
    for name in SUBPACKAGES:
        init = PACKAGE / name / "__init__.py"
        assert init.is_file(), f"course_utils/{name}/ must be a package"
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring.split()) >= 15, (
            f"course_utils/{name}/__init__.py needs a paragraph saying what lives there "
            "and what it may import"
        )
        assert "import" in docstring.lower(), (
            f"course_utils/{name}/__init__.py must say what it may import"
        )


@pytest.mark.parametrize("old", OLD_FLAT_MODULES)
def test_nothing_is_left_at_the_old_flat_paths(old):
    assert not (PACKAGE / f"{old}.py").exists(), f"course_utils/{old}.py is a leftover (no shims)"
    if old not in SUBPACKAGES:
        assert not (PACKAGE / old).is_dir()


def test_every_public_module_imports_in_a_student_runtime_without_notebook_tooling():
    modules = public_modules()
    assert len(modules) >= 30, modules  # the walk found the package
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORT_WITHOUT_TOOLING,
            json.dumps(NOTEBOOK_TOOLING),
            json.dumps(modules),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, report["failed"]
    assert report["loaded"] == [], f"importing course_utils loaded {report['loaded']}"


def test_the_blocker_would_catch_a_module_that_needs_notebook_tooling(tmp_path):
    """The student-runtime test can fail: a module importing nbformat is reported."""
    (tmp_path / "needs_tooling.py").write_text("import nbformat\n")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORT_WITHOUT_TOOLING,
            json.dumps(NOTEBOOK_TOOLING),
            json.dumps(["needs_tooling"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "nbformat" in report["failed"]["needs_tooling"]


@pytest.mark.parametrize("path", module_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_readable_in_one_sitting(path):
    lines = path.read_text().count("\n")
    if lines <= MAX_MODULE_LINES:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert LONG_MODULE_REASON in docstring, (
        f"{path.relative_to(ROOT)} has {lines} lines (> {MAX_MODULE_LINES}): split it by job, or "
        f"say in its docstring '{LONG_MODULE_REASON} ...'"
    )


FACADES = {
    "metrics": ("detection", "object_recall", "segmentation", "separation", "timing"),
    "viz": ("colors", "images", "detection", "masks", "history", "source"),
}


@pytest.mark.parametrize(
    "package, module_name",
    [(package, module) for package, modules in FACADES.items() for module in modules],
)
def test_a_facade_re_exports_each_of_its_modules_public_names(package, module_name):
    facade = importlib.import_module(f"course_utils.{package}")
    module = importlib.import_module(f"course_utils.{package}.{module_name}")
    assert module.__all__, f"course_utils.{package}.{module_name} must list its public names"
    for name in module.__all__:
        assert name in facade.__all__, f"{package}.__all__ lacks {module_name}.{name}"
        assert getattr(facade, name) is getattr(module, name)


@pytest.mark.parametrize("package", sorted(FACADES))
def test_a_facade_exports_nothing_else(package):
    facade = importlib.import_module(f"course_utils.{package}")
    exported = {
        name
        for module_name in FACADES[package]
        for name in importlib.import_module(f"course_utils.{package}.{module_name}").__all__
    }
    assert set(facade.__all__) == exported
    assert len(facade.__all__) == len(set(facade.__all__))
