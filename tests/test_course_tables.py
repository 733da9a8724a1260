"""The course-wide tables: rows recorded by the notebooks (core.results.record_row), the
scenes' size bins of AP small / AP large (metrics.scene_size_ap), the one-image timing
(metrics.one_image_ms) and the Markdown that make report puts into README (instructor.tables)."""

import json

import pytest
import torch

from course_utils.core import results
from course_utils.data.scenes import SceneConfig
from course_utils.instructor import tables
from course_utils.metrics import detection_ap, one_image_ms, scene_size_ap


@pytest.fixture
def results_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    return tmp_path


def test_record_row_keeps_the_table_columns_in_order_and_replaces_a_method(results_folder):
    results.record_row("detection", "YOLO", "06_yolo", params=10, AP50=0.5)
    results.record_row("detection", "SSD", "06_yolo", AP=0.2)
    results.record_row("detection", "YOLO", "06_yolo", AP50=0.6, note="S = 7")
    results.record_row("segmentation", "U-Net", "11_unet", mIoU=0.7, boundary=0.8)
    rows = results.load_rows(results_folder)
    assert [row["method"] for row in rows["detection"]] == ["SSD", "YOLO"]
    yolo = rows["detection"][1]
    assert yolo == {
        "table": "detection",
        "method": "YOLO",
        "notebook": "06_yolo",
        "note": "S = 7",
        "AP50": 0.6,
    }
    assert list(rows["segmentation"][0])[-2:] == ["mIoU", "boundary"]
    assert results.load_all(results_folder) == []  # the rows are not named numbers


@pytest.mark.parametrize(
    "table, method, notebook, columns, error, words",
    [
        ("detections", "YOLO", "06", {}, ValueError, "table must be one of"),
        ("detection", "", "06", {}, ValueError, "method must be"),
        ("detection", "YOLO", "", {}, ValueError, "notebook must be"),
        ("detection", "YOLO", "06", {"mIoU": 0.5}, ValueError, "unknown column(s) ['mIoU']"),
        ("segmentation", "U-Net", "11", {"mIoU": "high"}, TypeError, "'mIoU' must be a number"),
        ("segmentation", "U-Net", "11", {"mIoU": float("nan")}, ValueError, "must be finite"),
    ],
)
def test_record_row_rejects_bad_rows_with_a_message(
    results_folder, table, method, notebook, columns, error, words
):
    with pytest.raises(error) as raised:
        results.record_row(table, method, notebook, **columns)
    assert words in str(raised.value)
    assert not list(results_folder.glob("*.rows.json"))


def test_record_still_records_named_numbers_beside_rows(results_folder):
    results.record("04_fast_rcnn", "AP50", 0.7)
    results.record("04_fast_rcnn", "AP50", 0.8)
    results.record_row("detection", "Fast R-CNN", "04_fast_rcnn", AP50=0.8)
    assert [entry["value"] for entry in results.load_all(results_folder)] == [0.8]
    assert json.loads((results_folder / "04_fast_rcnn.json").read_text())[0]["name"] == "AP50"


def _box_target(sides):
    boxes = torch.tensor([[0.0, 0.0, s, s] for s in sides])
    return {"boxes": boxes, "labels": torch.ones(len(sides), dtype=torch.int64)}


def test_scene_size_bins_split_objects_that_coco_calls_all_small():
    small_below, large_above = SceneConfig().object_area_bins()
    assert (small_below, large_above) == (144.0, 576.0)
    assert SceneConfig(size=256).object_area_bins() == (576.0, 2304.0)
    # one object of side 10 (small), one of 30 (large): only the large one is found
    target = _box_target([10, 30])
    found = {
        "boxes": torch.tensor([[0.0, 0.0, 30.0, 30.0]]),
        "labels": torch.tensor([1]),
        "scores": torch.tensor([0.9]),
    }
    coco = detection_ap([found], [target])
    ours = scene_size_ap([found], [target])
    assert coco["APl"] == -1.0 and coco["APs"] == pytest.approx(0.5, abs=0.01)
    assert ours["AP_large"] == pytest.approx(1.0) and ours["AP_small"] == pytest.approx(0.0)
    assert ours["AP50"] == coco["AP50"] and ours["AP"] == coco["AP"]


@pytest.mark.parametrize("bins", [(576.0,), (0.0, 10.0), (100.0, 50.0), "small"])
def test_detection_ap_rejects_bad_area_bins(bins):
    with pytest.raises(ValueError, match="area_bins"):
        detection_ap([], [], area_bins=bins)


def test_one_image_ms_times_one_image_at_a_time_on_one_thread():
    seen = []

    def fn(image):
        seen.append((tuple(image.shape), torch.get_num_threads(), torch.is_grad_enabled()))
        return image * 2

    threads = torch.get_num_threads()
    ms = one_image_ms(fn, torch.rand(4, 3, 8, 8), passes=2)
    assert ms > 0
    assert len(seen) == 1 + 2 * 4
    assert set(seen) == {((3, 8, 8), 1, False)}
    assert torch.get_num_threads() == threads
    assert one_image_ms(fn, [torch.rand(3, 8, 8)]) > 0


@pytest.mark.parametrize(
    "fn, images, error",
    [
        (None, torch.rand(1, 3, 8, 8), TypeError),
        (abs, torch.rand(3, 8, 8), ValueError),
        (abs, [], TypeError),
    ],
)
def test_one_image_ms_rejects_bad_input(fn, images, error):
    with pytest.raises(error):
        one_image_ms(fn, images)


def test_format_tables_shows_missing_values_and_coco_minus_one_as_a_dash():
    rows = {
        "detection": [
            {
                "method": "R-CNN",
                "notebook": "03_rcnn",
                "note": "",
                "AP50": 0.51234,
                "AP": 0.2,
                "AP_small": -1.0,
                "ms_per_image": 812.4,
                "train_s": 12.34,
                "params": 123456.0,
            },
        ],
        "segmentation": [],
    }
    text = tables.format_tables(rows, "a laptop")
    row = next(line for line in text.splitlines() if line.startswith("| R-CNN"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == [
        "R-CNN",
        "`03_rcnn`",
        "0.512",
        "0.200",
        "–",
        "–",
        "812",
        "12.3",
        "123,456",
        "–",
    ]
    assert text.startswith("Measured by `make report` on: a laptop.")
    assert "(no rows recorded)" in text  # the empty segmentation table


def test_update_readme_replaces_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tables.BEGIN_MARKER}\nold table\n{tables.END_MARKER}\noutro\n")
    assert tables.update_readme(readme, "new table\n") is True
    assert readme.read_text() == (
        f"intro\n{tables.BEGIN_MARKER}\nnew table\n{tables.END_MARKER}\noutro\n"
    )
    assert tables.update_readme(readme, "new table\n") is False


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all\n",
        f"{tables.BEGIN_MARKER}\n{tables.BEGIN_MARKER}\n{tables.END_MARKER}\n",
        f"{tables.END_MARKER}\nx\n{tables.BEGIN_MARKER}\n",
    ],
)
def test_update_readme_refuses_bad_markers_and_leaves_the_file(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="course-tables"):
        tables.update_readme(readme, "new\n")
    assert readme.read_text() == text


def test_the_readme_has_the_markers():
    from course_utils.core.paths import repo_root

    text = (repo_root() / "README.md").read_text()
    assert text.count(tables.BEGIN_MARKER) == 1 and text.count(tables.END_MARKER) == 1
    assert text.index(tables.BEGIN_MARKER) < text.index(tables.END_MARKER)


def test_update_runtimes_writes_the_last_cell_of_each_notebook_row(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "| notebook | topic | CPU runtime |\n|---|---|---:|\n"
        "| `00_welcome` | set-up | 28 s |\n| `01_sliding_window` | windows | 90 s |\nafter\n"
    )
    found = tables.update_runtimes(readme, {"01_sliding_window": 73.4, "99_missing": 5.0})
    assert found == ["01_sliding_window"]
    assert readme.read_text() == (
        "| notebook | topic | CPU runtime |\n|---|---|---:|\n"
        "| `00_welcome` | set-up | 28 s |\n| `01_sliding_window` | windows | 73 s |\nafter\n"
    )
