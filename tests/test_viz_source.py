"""course_utils.viz.source: a class's or function's code shown in the notebook."""

import pytest

from course_utils.detection.yolo_network import YOLOConvHead, grid_features
from course_utils.viz import show_source


def test_show_source_prints_the_code_outside_a_notebook(capsys):
    show_source(grid_features)
    printed = capsys.readouterr().out
    assert printed.startswith("def grid_features(") and "AdaptiveAvgPool2d" in printed


def test_show_source_dedents_a_method():
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        show_source(YOLOConvHead.forward)
    assert buffer.getvalue().startswith("def forward(")


def test_show_source_rejects_what_has_no_python_source():
    with pytest.raises(TypeError, match="Python class or function"):
        show_source(len)
    with pytest.raises(TypeError, match="int"):
        show_source(3)
