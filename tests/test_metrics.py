"""What course_utils.metrics's modules import (the facade's names: tests/test_layout.py).

The scores themselves are tested in ``tests/test_metrics_<module>.py``.
"""

import ast
from pathlib import Path

import pytest

from course_utils import metrics

METRICS_FOLDER = Path(metrics.__file__).parent


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


def test_the_coco_metrics_are_the_twelve_of_cocoeval():
    assert metrics.COCO_METRICS[:3] == ("AP", "AP50", "AP75") and len(metrics.COCO_METRICS) == 12
