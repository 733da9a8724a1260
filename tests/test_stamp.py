"""course_utils.instructor.stamp: the repository's address stamped into set-up cells and badges."""

import nbformat

from course_utils.core.colab import DEFAULT_REPOSITORY_URL, colab_badge_url, setup_cell
from course_utils.instructor.release import release_all
from course_utils.instructor.stamp import stamp_file, stamp_notebook

FORK = "https://github.com/my-school/detseg-course"


def course_notebook(name: str = "05_x"):
    badge = f"[![Open In Colab](badge.svg)]({colab_badge_url(name, DEFAULT_REPOSITORY_URL)})"
    return nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(f"# {name}\n\n{badge}\n\nSee also {badge}."),
            nbformat.v4.new_code_cell(setup_cell(DEFAULT_REPOSITORY_URL)),
            nbformat.v4.new_code_cell("x = 1"),
        ]
    )


def test_stamp_points_the_setup_cell_and_every_badge_at_the_url():
    nb = course_notebook()
    assert stamp_notebook(nb, FORK)
    assert nb.cells[1].source == setup_cell(FORK)
    assert nb.cells[0].source.count(colab_badge_url("05_x", FORK)) == 2
    assert DEFAULT_REPOSITORY_URL.removeprefix("https://") not in nb.cells[0].source
    assert nb.cells[2].source == "x = 1"
    assert not stamp_notebook(nb, FORK)  # a second stamp changes nothing


def test_stamp_keeps_the_folder_and_name_of_each_link():
    nb = course_notebook()
    nb.cells[0].source += "\n" + colab_badge_url("07_y", DEFAULT_REPOSITORY_URL, "notebooks")
    stamp_notebook(nb, FORK)
    assert colab_badge_url("07_y", FORK, "notebooks") in nb.cells[0].source


def test_a_notebook_without_setup_cell_keeps_its_code():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    assert not stamp_notebook(nb, FORK)
    assert nb.cells[0].source == "print(1)"


def test_stamp_file_writes_only_when_something_changes(tmp_path):
    path = tmp_path / "05_x.ipynb"
    nbformat.write(course_notebook(), path)
    assert stamp_file(path, FORK)
    before = path.stat().st_mtime_ns
    assert not stamp_file(path, FORK)
    assert path.stat().st_mtime_ns == before
    assert nbformat.read(path, as_version=4).cells[1].source == setup_cell(FORK)


def test_release_all_stamps_the_sources_and_the_release(tmp_path):
    source, out = tmp_path / "notebooks", tmp_path / "release"
    source.mkdir()
    nbformat.write(course_notebook("05_x"), source / "05_x.ipynb")
    release_all(source, out, url=FORK)
    for folder in (source, out):
        nb = nbformat.read(folder / "05_x.ipynb", as_version=4)
        assert nb.cells[1].source == setup_cell(FORK)
        assert colab_badge_url("05_x", FORK) in nb.cells[0].source
