"""The course_utils.metrics facade: every public name of its modules, and the modules' imports.

The scores themselves are tested in ``tests/test_metrics_<module>.py``.
"""

import ast
import importlib
from pathlib import Path

import pytest

from course_utils import metrics

METRICS_MODULES = ("detection", "segmentation", "timing")
METRICS_FOLDER = Path(metrics.__file__).parent


@pytest.mark.parametrize("module_name", METRICS_MODULES)
def test_the_facade_re_exports_each_modules_public_names(module_name):
    module = importlib.import_module(f"course_utils.metrics.{module_name}")
    assert module.__all__, f"course_utils.metrics.{module_name} must list its public names"
    for name in module.__all__:
        assert name in metrics.__all__, f"metrics.__all__ lacks {module_name}.{name}"
        assert getattr(metrics, name) is getattr(module, name)


def test_the_facade_exports_nothing_else():
    exported = {
        name
        for module_name in METRICS_MODULES
        for name in importlib.import_module(f"course_utils.metrics.{module_name}").__all__
    }
    assert set(metrics.__all__) == exported
    assert len(metrics.__all__) == len(set(metrics.__all__))
    assert metrics.COCO_METRICS[:3] == ("AP", "AP50", "AP75") and len(metrics.COCO_METRICS) == 12


@pytest.mark.parametrize("path", sorted(METRICS_FOLDER.glob("*.py")), ids=lambda path: path.name)
def test_metrics_imports_only_core_data_and_itself_at_the_top(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("course_utils"):
                assert node.module.startswith(
                    ("course_utils.core", "course_utils.data", "course_utils.metrics")
                ), f"metrics/{path.name} imports {node.module}"
                assert node in tree.body, f"metrics/{path.name}: lazy import of {node.module}"
