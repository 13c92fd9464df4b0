"""Reading and writing images robustly (Pillow only, no Qt).

``load_image`` accepts what artists throw at it -- EXIF-rotated JPEGs, greyscale, CMYK,
palette, 16-bit and alpha images -- and returns RGB uint8; anything unreadable raises
:class:`ImageError` naming the file.  Writes are atomic: a temporary file in the target folder
is renamed into place, so a crash or cancel never leaves half a PNG.
"""

from __future__ import annotations

from contextlib import contextmanager

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .files import atomic_write_bytes, name_max

#: The largest image read, in pixels: 100 Mpx (10000 x 10000) covers full-frame (61 Mpx) and
#: medium-format (100 Mpx) photos and is 300 MB as RGB; beyond that a file is refused from its
#: header, before any pixel is decoded (a 1 MB PNG can claim 20000 x 20000 = 1.2 GB of RGB).
MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS   # Pillow's own check (a warning up to 2x, then an error) as a backstop


class ImageError(ValueError):
    """An image file could not be read or written; the message names the file."""


def to_rgb_uint8(im: Image.Image) -> np.ndarray:
    """Any Pillow image -> RGB uint8 array (H, W, 3); alpha is composited on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, -1)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, -1)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def check_size(im: Image.Image, path: Path) -> None:
    """Refuse an image larger than ``MAX_PIXELS`` from its header, before decoding it."""
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{path}: image is too large ({w}x{h} pixels = {w * h / 1e6:.0f} Mpx; "
                         f"at most {MAX_PIXELS / 1e6:.0f} Mpx are read)")


@contextmanager
def _opened(path: Path, what: str = "image"):
    """Open an image file with Pillow, its size checked against ``MAX_PIXELS`` from the header;
    a missing, unreadable or oversized file -> ImageError naming it (and ``what`` it should be)."""
    try:
        with Image.open(path) as im:
            check_size(im, path)
            yield im
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: not a readable {what} ({e})") from None


def check_image_file(path: str | os.PathLike) -> tuple[int, int]:
    """Read only the header of an image file: it exists, Pillow knows the format and it is within
    ``MAX_PIXELS``. -> (width, height); anything else -> ImageError naming the file."""
    with _opened(Path(path)) as im:
        return im.size


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), applying its EXIF orientation; files over
    ``MAX_PIXELS`` are refused before they are decoded."""
    path = Path(path)
    with _opened(path) as im:
        im.load()
        arr = to_rgb_uint8(ImageOps.exif_transpose(im))
    if arr.ndim != 3 or arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageError(f"{path}: image is too small ({arr.shape[1]}x{arr.shape[0]} pixels)")
    return np.ascontiguousarray(arr)


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as float32 in [0, 1] (H, W); any colour image is reduced to luminance
    (alpha counts when the image has one)."""
    path = Path(path)
    with _opened(path, "mask image") as im:
        im.load()
        if im.mode in ("RGBA", "LA"):
            a = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im, dtype=np.float32)
            a = a / (65535.0 if a.max() > 255 else 255.0)
        elif im.mode == "F":                 # float masks: 0-1, or 0-255 when larger values occur
            a = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
            a = a / 255.0 if a.max() > 1.0 else a
        else:
            a = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return np.clip(a, 0.0, 1.0)


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Fail early (ImageError) when ``path`` cannot be written as a file: its folder is missing
    or not writable, it is a folder, or its name is too long; writes nothing."""
    path = Path(path).expanduser()
    parent = path.absolute().parent
    if path.is_dir():
        raise ImageError(f"{what} {path} is a folder; give a file name")
    if not parent.is_dir():
        raise ImageError(f"{what} {path}: the folder {parent} does not exist")
    limit = name_max(parent)
    if len(os.fsencode(path.name)) > limit:
        raise ImageError(f"{what} {path}: the name is longer than {limit} bytes")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ImageError(f"{what} {path}: no write permission in {parent}")
    return path


def encode_png(image: np.ndarray, compress_level: int = 3) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> PNG bytes (zlib level 0-9)."""
    import io

    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"PNG images must be uint8, got {arr.dtype}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=int(compress_level))
    return buf.getvalue()


def encode_indexed_png(indices: np.ndarray, palette: np.ndarray, compress_level: int = 3) -> bytes:
    """uint8 (H, W) indices and an (N, 3) uint8 palette -> an 8-bit palette PNG: it shows as
    ``palette[indices]`` in any viewer at a third of the RGB image's bytes and encoding time."""
    import io

    arr = np.ascontiguousarray(indices, np.uint8)
    im = Image.fromarray(arr)                       # 8-bit grey; putpalette makes it a palette image
    im.putpalette(np.asarray(palette, np.uint8).reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=int(compress_level))
    return buf.getvalue()


def save_image(path: str | os.PathLike, image: np.ndarray, compress_level: int = 3) -> None:
    """Save a uint8 image atomically; the format follows the suffix (PNG, JPEG, ...)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        data = encode_png(image, compress_level)
    else:
        import io

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
        data = buf.getvalue()
    write_image_bytes(path, data)


def write_image_bytes(path: str | os.PathLike, data: bytes, atomic: bool = True) -> None:
    """Write an encoded image; a failure (a full disk, no permission) is an ImageError that
    says so.  ``atomic=False`` writes in place, unsynced: for files in a staging folder that is
    flushed and renamed into place as a whole (:func:`triface_studio.core.files.sync_files`)."""
    try:
        if atomic:
            atomic_write_bytes(path, data)
        else:
            Path(path).write_bytes(data)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 in [0, 1]."""
    return image.astype(np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float image in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.asarray(image, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
