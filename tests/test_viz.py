"""The course_utils.viz facade: every public name of its modules, and the modules' imports.

What each module draws is tested in ``tests/test_viz_<module>.py``.
"""

import ast
import importlib
from pathlib import Path

import pytest

from course_utils import viz

VIZ_MODULES = ("colors", "images", "detection", "masks", "history")
VIZ_FOLDER = Path(viz.__file__).parent


@pytest.mark.parametrize("module_name", VIZ_MODULES)
def test_the_facade_re_exports_each_modules_public_names(module_name):
    module = importlib.import_module(f"course_utils.viz.{module_name}")
    assert module.__all__, f"course_utils.viz.{module_name} must list its public names"
    for name in module.__all__:
        assert name in viz.__all__, f"viz.__all__ lacks {module_name}.{name}"
        assert getattr(viz, name) is getattr(module, name)


def test_the_facade_exports_nothing_else():
    exported = {
        name
        for module_name in VIZ_MODULES
        for name in importlib.import_module(f"course_utils.viz.{module_name}").__all__
    }
    assert set(viz.__all__) == exported
    assert len(viz.__all__) == len(set(viz.__all__))


def _course_imports(path: Path) -> set[str]:
    """The ``course_utils`` modules a file imports (``import x`` and ``from x import y``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("course_utils")}


@pytest.mark.parametrize("path", sorted(VIZ_FOLDER.glob("*.py")), ids=lambda path: path.name)
def test_viz_imports_only_core_and_itself(path):
    """Class names come from the caller: viz never reaches for course_utils.data.scenes."""
    for name in _course_imports(path):
        assert name.startswith(("course_utils.core", "course_utils.viz")), (
            f"viz/{path.name} imports {name}"
        )


def test_the_import_check_sees_lazy_imports(tmp_path):
    """The check above can fail: an import inside a function is found too."""
    source = tmp_path / "lazy.py"
    source.write_text("def names():\n    from course_utils.data import scenes\n")
    assert _course_imports(source) == {"course_utils.data"}
