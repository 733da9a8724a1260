"""Tiny stand-ins for the real photo datasets, written in their on-disk formats (offline, fast).

* ``write_pennfudan_folder``: ``PennFudanPed/`` as in the authors' archive (PNGImages, PedMasks
  with instance ids, Annotation); ``pennfudan_zip`` zips it like ``PennFudanPed.zip``.
* ``write_pet_folder``: ``oxford-iiit-pet/`` as ``torchvision.datasets.OxfordIIITPet`` reads it.
* ``write_voc_folder``: ``VOCdevkit/VOC<year>/`` as ``torchvision.datasets.VOCDetection`` reads
  it; ``voc_fixture_objects`` says which objects it writes.

Helpers for tests, not tests: ``from photo_fixtures import write_pennfudan_folder``.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

#: Prefixes of the image names, as in the real archive (the two universities).
PENNFUDAN_PREFIXES = ("FudanPed", "PennPed")
#: (breed name as in the file names, class id 1..37, species 1 cat / 2 dog) of the pet fixture.
PET_BREEDS = (("Abyssinian", 1, 1), ("beagle", 3, 2), ("Bengal", 6, 1))
#: Class names of the VOC fixture's objects (all VOC classes).
VOC_FIXTURE_NAMES = ("person", "dog", "car")


def _noise_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth-ish random RGB uint8 (H, W, 3) picture (a gradient plus noise)."""
    gradient = np.linspace(40, 200, width, dtype=np.float64)[None, :, None]
    noise = rng.normal(0, 20, (height, width, 3))
    return np.clip(gradient + noise, 0, 255).astype(np.uint8)


def _paint_pedestrian(
    ids: np.ndarray, rng: np.random.Generator, instance: int, left: int, right: int
) -> None:
    """Paint pedestrian ``instance`` (a tall rectangle or ellipse) within columns
    [left, right) of the id image ``ids`` (H, W), in place."""
    height = ids.shape[0]
    strip = right - left
    box_width = int(rng.integers(max(3, strip // 4), max(4, strip * 2 // 3) + 1))
    box_height = int(rng.integers(height // 3, height - 2))
    x1 = int(rng.integers(left, right - box_width + 1))
    y1 = int(rng.integers(0, height - box_height + 1))
    if rng.random() < 0.5:
        ids[y1 : y1 + box_height, x1 : x1 + box_width] = instance
        return
    rows, cols = np.mgrid[0 : ids.shape[0], 0 : ids.shape[1]]
    cy, cx = y1 + (box_height - 1) / 2, x1 + (box_width - 1) / 2
    inside = ((rows - cy) / (box_height / 2)) ** 2 + ((cols - cx) / (box_width / 2)) ** 2 <= 1
    ids[inside] = instance


def pennfudan_names(count: int) -> list[str]:
    """The fixture's image stems: FudanPed00001, PennPed00001, FudanPed00002, ..."""
    return [f"{PENNFUDAN_PREFIXES[i % 2]}{i // 2 + 1:05d}" for i in range(count)]


def write_pennfudan_folder(
    root: str | Path, count: int = 4, size: tuple[int, int] = (60, 80), seed: int = 0
) -> Path:
    """Write ``root/"PennFudanPed"`` with ``count`` RGB images of ``size`` (H, W) and their
    instance-id masks (1-3 pedestrians of different sizes, ids 1..N, each in its own vertical
    strip so that none hides another); returns that folder."""
    rng = np.random.default_rng(seed)
    height, width = size
    folder = Path(root) / "PennFudanPed"
    for sub in ("PNGImages", "PedMasks", "Annotation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in pennfudan_names(count):
        ids = np.zeros((height, width), dtype=np.uint8)
        people = int(rng.integers(1, 4))
        edges = np.linspace(0, width, people + 1).astype(int)
        for instance in range(1, people + 1):
            _paint_pedestrian(ids, rng, instance, int(edges[instance - 1]), int(edges[instance]))
        Image.fromarray(_noise_image(rng, height, width)).save(folder / "PNGImages" / f"{name}.png")
        Image.fromarray(ids).save(folder / "PedMasks" / f"{name}_mask.png")
        (folder / "Annotation" / f"{name}.txt").write_text(f"# fixture annotation of {name}\n")
    (folder / "added-object-list.txt").write_text("fixture\n")
    return folder


def pennfudan_zip(
    tmp_path: str | Path, count: int = 4, size: tuple[int, int] = (60, 80), seed: int = 0
) -> tuple[Path, str]:
    """``(tmp_path/"archive"/"PennFudanPed.zip", its SHA-256 hex)``: a fixture folder zipped with
    the top folder ``PennFudanPed/``, as in the real archive."""
    source = write_pennfudan_folder(Path(tmp_path) / "zip-source", count, size, seed)
    archive = Path(tmp_path) / "archive" / "PennFudanPed.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as opened:
        for path in sorted(source.rglob("*")):
            opened.write(path, Path("PennFudanPed") / path.relative_to(source))
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def pet_trimap(height: int, width: int) -> np.ndarray:
    """A trimap uint8 (H, W) as the Pet dataset stores it: 2 background, 1 pet (an ellipse over
    the middle half of the image), 3 a 3-pixel border ring around the pet."""
    rows, cols = np.mgrid[0:height, 0:width]
    radius = ((rows - (height - 1) / 2) / (height / 4)) ** 2 + (
        (cols - (width - 1) / 2) / (width / 4)
    ) ** 2
    trimap = np.full((height, width), 2, dtype=np.uint8)
    trimap[radius <= 1.6] = 3
    trimap[radius <= 1.0] = 1
    return trimap


def write_pet_folder(
    root: str | Path, count: int = 6, size: tuple[int, int] = (48, 64), seed: int = 0
) -> Path:
    """Write ``root/"oxford-iiit-pet"`` as torchvision's ``OxfordIIITPet`` reads it: JPEG
    ``images/<name>.jpg``, trimaps ``annotations/trimaps/<name>.png`` (``pet_trimap``) and the
    split files ``annotations/trainval.txt`` (the first ``count - count // 3`` images) and
    ``test.txt`` (the rest), lines ``name class_id species breed_id``; returns that folder."""
    rng = np.random.default_rng(seed)
    height, width = size
    folder = Path(root) / "oxford-iiit-pet"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        breed, class_id, species = PET_BREEDS[index % len(PET_BREEDS)]
        name = f"{breed}_{index + 1}"
        Image.fromarray(_noise_image(rng, height, width)).save(folder / "images" / f"{name}.jpg")
        Image.fromarray(pet_trimap(height, width)).save(
            folder / "annotations" / "trimaps" / f"{name}.png"
        )
        lines.append(f"{name} {class_id} {species} {index % 12 + 1}\n")
    cut = count - count // 3
    (folder / "annotations" / "trainval.txt").write_text("".join(lines[:cut]))
    (folder / "annotations" / "test.txt").write_text("".join(lines[cut:]))
    return folder


def voc_fixture_objects(index: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The objects ``write_voc_folder`` writes in image ``index``: ``(name, (xmin, ymin, xmax,
    ymax))`` in VOC's 1-based inclusive pixels; image i holds ``1 + i % 2`` objects."""
    return [
        (VOC_FIXTURE_NAMES[(index + j) % 3], (3 + 10 * j, 5 + j, 12 + 10 * j, 30 - j))
        for j in range(1 + index % 2)
    ]


def _voc_xml(name: str, height: int, width: int, objects) -> str:
    """A VOC annotation file's text for ``objects`` (``voc_fixture_objects``)."""
    parts = [
        f"<annotation><folder>VOC2012</folder><filename>{name}.jpg</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
        "<segmented>0</segmented>",
    ]
    for label, (xmin, ymin, xmax, ymax) in objects:
        parts.append(
            f"<object><name>{label}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>0</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    parts.append("</annotation>\n")
    return "\n".join(parts)


def voc_fixture_names(count: int) -> list[str]:
    """The fixture's image ids: 2012_000001, 2012_000002, ..."""
    return [f"2012_{index + 1:06d}" for index in range(count)]


def write_voc_folder(
    root: str | Path, count: int = 3, image_set: str = "val", year: str = "2012"
) -> Path:
    """Write ``root/"VOCdevkit"/"VOC<year>"`` as torchvision's ``VOCDetection`` reads it:
    ``JPEGImages/<id>.jpg`` (40 x 50, H x W), ``Annotations/<id>.xml`` with the objects of
    ``voc_fixture_objects`` and ``ImageSets/Main/<image_set>.txt``; returns that folder."""
    rng = np.random.default_rng(0)
    folder = Path(root) / "VOCdevkit" / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    names = voc_fixture_names(count)
    for index, name in enumerate(names):
        Image.fromarray(_noise_image(rng, 40, 50)).save(folder / "JPEGImages" / f"{name}.jpg")
        (folder / "Annotations" / f"{name}.xml").write_text(
            _voc_xml(name, 40, 50, voc_fixture_objects(index))
        )
    (folder / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(names) + "\n")
    return folder
