"""What course_utils.viz's modules import (the facade's names: tests/test_layout.py).

What each module draws is tested in ``tests/test_viz_<module>.py``.
"""

import ast
from pathlib import Path

import pytest

from course_utils import viz

VIZ_FOLDER = Path(viz.__file__).parent


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
