"""Any photograph as a course image: ``tv_tensors.Image`` float32 (3, H, W) in [0, 1].

    image = load_photo("my_street.jpg")           # a path, a PIL image or a numpy array
    image = load_photo(array, max_side=512)       # longer side shrunk to 512 (aspect kept)
    image = sample_photo("chelsea")               # scikit-image's photographs, offline

``load_photo`` accepts what students have at hand: a file path (str or Path, read with PIL),
a ``PIL.Image.Image`` in any mode (L, LA, P, RGBA, I;16, CMYK...), or a numpy array (H, W)
greyscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA, uint8 (0-255) or float in [0, 1].
Greyscale becomes three equal channels; transparency is composited over white. Input that
fits none of these fails with a message saying what was expected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from course_utils.core.validate import check_int

__all__ = ["MIN_SIDE", "SAMPLE_PHOTOS", "load_photo", "sample_photo"]

#: Smallest height or width ``load_photo`` accepts, in pixels.
MIN_SIDE = 16
#: Photographs shipped inside the scikit-image wheel (no download): ``astronaut`` (Eileen
#: Collins, 512 x 512), ``chelsea`` (a cat, 451 x 300), ``coffee`` (a cup, 600 x 400), ``rocket``
#: (a launch pad, 640 x 427), ``camera`` (a photographer, greyscale 512 x 512).
SAMPLE_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "camera")

_EXPECTED_ARRAY = (
    "(H, W) greyscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA, "
    "uint8 in 0-255 or float in [0, 1]"
)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _read_path(path: str | Path) -> Image.Image:
    """The image file at ``path``, loaded (FileNotFoundError / ValueError when it is not one)."""
    path = Path(path).expanduser()
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"photo {str(path)!r} {problem}: expected the path of an image file (PNG, JPEG, ...)"
        )
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"photo {str(path)!r} is not an image file PIL can read (expected PNG, JPEG, "
            f"BMP, TIFF, ...): {error}"
        ) from error


def _array_from_pil(image: Image.Image) -> np.ndarray:
    """A PIL image as uint8 (H, W, 3) RGB or (H, W, 4) RGBA, or float32 (H, W) for 16-bit and
    float modes (16-bit divided by 65535, float modes kept as they are)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.asarray(image).astype(np.float64)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise ValueError(
                f"a PIL image in mode {image.mode!r} must hold 16-bit values (0-65535), got "
                f"range [{pixels.min():g}, {pixels.max():g}]"
            )
        return (pixels / 65535.0).astype(np.float32)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))


def _check_array(array: np.ndarray) -> None:
    """TypeError / ValueError unless ``array`` has a shape, dtype and range ``load_photo`` takes."""
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))
    if not shape_ok:
        hint = (
            " (looks like CHW: use array.transpose(1, 2, 0))"
            if array.ndim == 3 and array.shape[0] in (1, 3, 4)
            else ""
        )
        raise ValueError(f"photo must be {_EXPECTED_ARRAY}; got shape {array.shape}{hint}")
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"photo must be {_EXPECTED_ARRAY}; got dtype {array.dtype}")
    height, width = array.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"photo must be at least {MIN_SIDE} x {MIN_SIDE} pixels, got {height} x {width} "
            "(height x width)"
        )
    if array.dtype != np.uint8:
        low, high = float(np.min(array)), float(np.max(array))
        if not np.isfinite(array).all() or low < 0 or high > 1:
            hint = " (values look like 0-255: divide by 255)" if high > 1.5 else ""
            raise ValueError(
                f"a float photo must hold values in [0, 1] (no NaN), got range "
                f"[{low:.3g}, {high:.3g}]{hint}"
            )


def _to_rgb(array: np.ndarray) -> np.ndarray:
    """A checked array -> float32 (H, W, 3) in [0, 1]: uint8 / 255, greyscale repeated three
    times, RGBA composited over white (``rgb * alpha + (1 - alpha)``)."""
    pixels = array.astype(np.float32)
    if array.dtype == np.uint8:
        pixels /= np.float32(255.0)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:]
        pixels = pixels[..., :3] * alpha + (1.0 - alpha)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return pixels


def _shrink(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """Resize (antialiased) so that the longer side is ``max_side`` if it is longer."""
    height, width = image.shape[-2:]
    longer = max(height, width)
    if longer <= max_side:
        return image
    size = [max(1, round(height * max_side / longer)), max(1, round(width * max_side / longer))]
    return F.resize(image, size, antialias=True).clamp(0, 1)


def load_photo(photo, max_side: int = 1024) -> tv_tensors.Image:
    """A photograph as ``tv_tensors.Image`` float32 (3, H, W) in [0, 1].

    Args:
        photo: a file path (str or Path), a ``PIL.Image.Image`` (any mode: 16-bit modes are
            scaled by 1/65535; a camera's EXIF orientation is applied, so a phone photo stands
            up) or a numpy array (H, W) greyscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA,
            dtype uint8 (0-255) or float in [0, 1]. Greyscale becomes three equal channels;
            transparent pixels are composited over white. Height and width must be at least
            ``MIN_SIDE`` (16).
        max_side: a photo whose longer side exceeds it is resized (antialiased) so that its
            longer side is ``max_side``, aspect ratio kept (the other side rounded).

    Raises ``TypeError`` / ``ValueError`` / ``FileNotFoundError`` naming the expected shape,
    dtype or range.
    """
    check_int(max_side, "max_side", minimum=MIN_SIDE)
    if isinstance(photo, (str, Path)):
        photo = _read_path(photo)
    if isinstance(photo, Image.Image):
        photo = _array_from_pil(ImageOps.exif_transpose(photo))
    if not isinstance(photo, np.ndarray):
        hint = ""
        if torch.is_tensor(photo):
            hint = " (for a CHW tensor: tensor.permute(1, 2, 0).numpy())"
        raise TypeError(
            f"photo must be a file path, a PIL image or a numpy array {_EXPECTED_ARRAY}; got "
            f"{type(photo).__name__}{hint}"
        )
    _check_array(photo)
    image = torch.from_numpy(np.ascontiguousarray(_to_rgb(photo).transpose(2, 0, 1)))
    return tv_tensors.Image(_shrink(image, max_side))


def sample_photo(name: str, max_side: int = 1024) -> tv_tensors.Image:
    """scikit-image's photograph ``name`` (one of ``SAMPLE_PHOTOS``) through ``load_photo``:
    float32 (3, H, W) in [0, 1]. Nothing is downloaded."""
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"name must be one of {SAMPLE_PHOTOS}, got {name!r}")
    return load_photo(getattr(skimage.data, name)(), max_side=max_side)
