"""The optional "On real photos" sections of notebooks 05, 08, 11 and 12, run offline.

Each section sits behind ``REAL_PHOTOS = False`` in its notebook's constants cell, so nbval runs
it switched off. Here every section runs switched on, in a kernel of its own, with what this
machine has: random weights (``weights=None``: nothing is downloaded), fixture photos in the
datasets' own folder formats (``tests/photo_fixtures.py``) and a couple of training steps. The
code a student runs on Colab is the notebook's own: the test executes the notebook's import cell,
then the section's cells, with one cell of smaller settings after the section's settings cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from photo_fixtures import write_pennfudan_folder, write_pet_folder

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
HEADING = re.compile(r"^## \d+ · On real photos")
SWITCHED_OFF = "REAL_PHOTOS is False: the cells of this section do nothing"

#: Per notebook: the fixture data, the smaller settings, what the section must print when on, and
#: how many figures it shows at least.
#: The names the section takes from earlier cells of its notebook (the student's UNet and
#: MaskHead, checked there against the same references) are given here.
CASES = {
    "05_faster_rcnn": (
        "pennfudan",
        "PHOTO_WEIGHTS = None\nPHOTO_STEPS, PHOTO_BATCH, PHOTO_VAL = 2, 2, 2\nPHOTO_MIN_SIZE = 64",
        ("photos to fine-tune on", "91 COCO class ids", "pre-trained start: 2 steps", "AP50"),
        2,
    ),
    "08_fcn": (
        None,
        'PHOTO_WEIGHTS = None\nPHOTO_SIDE = 64\nPHOTO_NAMES = ("chelsea", "coffee")',
        ("21 classes", "chelsea: photo", "class scores (21, 4, "),
        1,
    ),
    "11_unet": (
        "pets",
        "from course_utils.segmentation.unet import UNet\n"
        'RUN = ""\nPHOTO_SIZE, PHOTO_WIDTH = 32, 4\nPHOTO_STEPS, PHOTO_BATCH, PHOTO_TEST = 2, 2, 3',
        ("training photos", "w_c =", "class-balanced cross-entropy: 2 steps", "mIoU"),
        2,
    ),
    "12_mask_rcnn": (
        "pennfudan",
        "from course_utils.detection.mask_rcnn import MaskHead\n"
        "PHOTO_WEIGHTS = None\nPHOTO_STEPS, PHOTO_BATCH, PHOTO_VAL = 2, 2, 2\nPHOTO_MIN_SIZE = 64",
        ("to fine-tune on", "yours mask branch: 2 steps", "mask AP"),
        2,
    ),
}


def section_sources(notebook) -> tuple[str, str, list[str]]:
    """(the notebook's import-and-constants cell, the section's settings cell, its other code
    cells), the section running from its "## N · On real photos" heading to the next "## "."""
    cells = notebook.cells
    starts = [
        i for i, c in enumerate(cells) if c.cell_type == "markdown" and HEADING.match(c.source)
    ]
    assert len(starts) == 1, f"expected one '## N · On real photos' section, found {len(starts)}"
    end = next(
        (
            i
            for i in range(starts[0] + 1, len(cells))
            if cells[i].cell_type == "markdown" and cells[i].source.startswith("## ")
        ),
        len(cells),
    )
    code = [c.source for c in cells[starts[0] : end] if c.cell_type == "code"]
    setup = [c.source for c in cells if c.cell_type == "code" and "notebook_setup(" in c.source]
    assert len(setup) == 1 and len(code) >= 2
    return setup[0], code[0], code[1:]


def _fixture_root(kind: str | None, root: Path) -> Path:
    """Write the fixture data the section reads into ``root``."""
    if kind == "pennfudan":
        write_pennfudan_folder(root, count=6)
    elif kind == "pets":
        write_pet_folder(root, count=8)
    return root


def _run(sources: list[str], workdir: Path) -> list:
    """Execute ``sources`` as the cells of one notebook; returns the executed cells."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook.cells


def _text(cell) -> str:
    """The stream and plain-text outputs of an executed cell."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "text/plain" in output.get("data", {}) and "image/png" not in output.get("data", {}):
            parts.append(output["data"]["text/plain"])
    return "".join(parts)


def _images(cells) -> int:
    return sum("image/png" in o.get("data", {}) for c in cells for o in c.outputs)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_real_photo_section_runs_offline_with_random_weights(name, tmp_path, monkeypatch):
    kind, settings, expected, figures = CASES[name]
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    setup, section_settings, section = section_sources(notebook)
    assert re.search(r"^REAL_PHOTOS = False\b", setup, re.M), "the section must be off by default"
    data = _fixture_root(kind, tmp_path / "data")
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend: figures are outputs
    smaller = f"PHOTO_DATA = Path({str(data)!r})\n{settings}"
    off = [setup, "from pathlib import Path", section_settings, smaller, *section]
    on = ["REAL_PHOTOS = True", section_settings, smaller, *section]
    cells = _run([*off, *on], tmp_path)
    off_cells, on_cells = cells[: len(off)], cells[len(off) :]

    off_text = "".join(_text(c) for c in off_cells[2:])
    assert off_text.strip() == SWITCHED_OFF + " (see the constants cell).", off_text
    assert _images(off_cells) == 0
    on_text = "".join(_text(c) for c in on_cells)
    for words in expected:
        assert words in on_text, f"{words!r} not printed by the section:\n{on_text}"
    assert SWITCHED_OFF not in on_text
    assert _images(on_cells) >= figures, "the section shows its data and its results"
    if kind is not None:  # the checkpoints the section trained, under the course's folder
        assert list((tmp_path / "checkpoints").glob(f"{name[:2]}_*.pt"))


def test_the_section_finder_rejects_a_notebook_without_the_section():
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("DEVICE = notebook_setup(seed=0)")]
    )
    with pytest.raises(AssertionError, match="found 0"):
        section_sources(notebook)
