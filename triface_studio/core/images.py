"""Reading and writing images robustly (Pillow only, no Qt).

``load_image`` accepts what artists throw at it -- EXIF-rotated JPEGs, greyscale, CMYK,
palette, 16-bit and alpha images -- and returns RGB uint8; anything unreadable raises
:class:`ImageError` naming the file.  Writes are atomic: a temporary file in the target folder
is renamed into place, so a crash or cancel never leaves half a PNG.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 250_000_000  # allow large photos, still refuse decompression bombs


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


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), applying its EXIF orientation."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = to_rgb_uint8(im)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from None
    if arr.ndim != 3 or arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageError(f"{path}: image is too small ({arr.shape[1]}x{arr.shape[0]} pixels)")
    return np.ascontiguousarray(arr)


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as float32 in [0, 1] (H, W); any colour image is reduced to luminance
    (alpha counts when the image has one)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA"):
                a = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float32)
                a = a / (65535.0 if a.max() > 255 else 255.0)
            else:
                a = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: not a readable mask image ({e})") from None
    return np.clip(a, 0.0, 1.0)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> PNG bytes."""
    import io

    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"PNG images must be uint8, got {arr.dtype}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Save a uint8 image atomically; the format follows the suffix (PNG, JPEG, ...)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        data = encode_png(image)
    else:
        import io

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
        data = buf.getvalue()
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 in [0, 1]."""
    return image.astype(np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float image in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.asarray(image, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
