"""The pieces of a session file (no Qt): masks and result images as PNG, the result's tri-plane as
safetensors, photo paths relative to the session, version 1 sessions upgraded.  Nothing here
unpickles; a broken member -> :class:`SetupError` naming it."""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from triface_studio.core.files import atomic_write_bytes
from triface_studio.core.images import ImageError, check_size, encode_png, load_mask, to_uint8
from triface_studio.pipeline.requests import EditRequest

from .brush import MASK_SIZE

MAX_MASK_SIDE = 4096


class SetupError(ValueError):
    """A setup or session file that cannot be used (the message names the file or the field)."""


@dataclass
class SavedResult:
    """An edit's result as a session keeps it: what the result panel, the orbit and the exports
    read (the same fields as :class:`~triface_studio.pipeline.EditResult`)."""

    composite: np.ndarray
    composite_full: np.ndarray
    coarse: np.ndarray
    s_blend: np.ndarray
    sde_mask: np.ndarray
    gap_mask: np.ndarray
    t_com: Any
    alpha: np.ndarray | None = None
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    request: EditRequest | None = None


RESULT_PNGS = {"composite": "edited_crop.png", "composite_full": "edited.png", "coarse": "coarse.png",
                "s_blend": "labels.png", "sde_mask": "mask_sde.png", "gap_mask": "mask_gap.png", "alpha": "alpha.png"}
RESULT_ASSET = "t_com.safetensors"


def result_files(result) -> dict[str, bytes]:
    """A result's members of the session file: PNG images and the tri-plane as safetensors."""
    files = {}
    for k, n in RESULT_PNGS.items():
        a = getattr(result, k, None)
        if a is not None:
            a = np.asarray(a)
            files[f"result/{n}"] = encode_png(a if a.dtype == np.uint8 else to_uint8(a))
    files[f"result/{RESULT_ASSET}"] = result.t_com.to_bytes()
    return files


def relative_path(path: str | None, base: Path | None) -> str | None:
    """``path`` relative to ``base`` (the session's folder) where it can be, else absolute."""
    if not path:
        return None
    p = Path(path).absolute()
    if base is None:
        return str(p)
    try:
        return os.path.relpath(p, base)
    except ValueError:                 # another drive (Windows)
        return str(p)


def resolve_path(path: str, base: Path, old: str | None) -> str:
    """A path from a file: absolute as it is; relative to the file's folder, or when nothing is
    there, to the folder it was saved from (a session moved on its own)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    here = (base / p).resolve()
    if not here.exists() and old:
        there = (Path(old) / p).resolve()
        if there.exists():
            return str(there)
    return str(here)


def mask_png(mask: np.ndarray) -> bytes:
    return encode_png(to_uint8(mask))


def png_image(data: bytes, what: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            check_size(im, what)
            im.load()
            return np.asarray(im)
    except (ImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, SetupError):
            raise
        raise SetupError(f"{what}: not a readable PNG ({e})") from None


def png_mask(data: bytes, what: str = "mask") -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > MAX_MASK_SIDE:
                raise SetupError(f"{what}: a {im.size[0]}x{im.size[1]} mask is larger than a crop can be")
            a = np.asarray(im.convert("L"), np.float32) / 255.0
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, SetupError):
            raise
        raise SetupError(f"{what}: not a readable mask PNG ({e})") from None
    if a.shape != (MASK_SIZE, MASK_SIZE):
        a = np.asarray(Image.fromarray(a).resize((MASK_SIZE, MASK_SIZE), Image.BILINEAR), np.float32)
    return a


def read_result(res: dict, read, where: str) -> SavedResult:
    from triface_studio.core.asset import AssetError, TriPlaneAsset

    files = res["files"]
    got = {}
    for k in RESULT_PNGS:
        name = files.get(k)
        if isinstance(name, str):
            got[k] = png_image(read(name), f"{where}: {name}")
    missing = [k for k in ("composite", "composite_full", "coarse", "s_blend", "sde_mask", "gap_mask") if k not in got]
    name = files.get("t_com")
    if missing or not isinstance(name, str):
        raise SetupError(f"{where}: the saved result is incomplete ({', '.join(missing) or 't_com'} missing)")
    with tempfile.TemporaryDirectory(prefix="triface-session-") as tmp:
        f = Path(tmp) / "t_com.safetensors"
        f.write_bytes(read(name))
        try:
            asset = TriPlaneAsset.load(f)
        except AssetError as e:
            raise SetupError(f"{where}: the saved tri-plane: {str(e).replace(str(f), name)}") from None
    as_float = {k: got[k].astype(np.float32) / 255.0 for k in ("coarse", "sde_mask", "gap_mask", "alpha") if k in got}
    notes = res.get("notes") if isinstance(res.get("notes"), list) else []
    return SavedResult(composite=got["composite"][..., :3], composite_full=got["composite_full"][..., :3],
                       coarse=as_float["coarse"][..., :3], s_blend=got["s_blend"], sde_mask=as_float["sde_mask"],
                       gap_mask=as_float["gap_mask"], t_com=asset, alpha=as_float.get("alpha"),
                       notes=[str(n) for n in notes])


def upgrade_v1(doc: dict) -> dict:
    """A version 1 session (identity / references / settings) in this version's terms."""
    ident = doc.get("identity") if isinstance(doc.get("identity"), dict) else {}
    st = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
    refs = [{"image": r.get("path") or None, "attributes": r.get("attributes", []), "mask": r.get("mask"),
             "mask_mode": r.get("mask_mode", "add")}
            for r in doc.get("references", []) if isinstance(r, dict)]
    return {"request": {"identity": ident.get("path") or None, "identity_mask": ident.get("mask"), "references": refs,
                        "refine": {"refiner": st.get("refiner", "classical")}, "seed": st.get("seed"),
                        "background": st.get("background")},
            "view": {"yaw": st.get("yaw", 0.0), "pitch": st.get("pitch", 0.0)}, "paths_from": None}


def load_mask_png(path: str | os.PathLike, size: int = MASK_SIZE) -> np.ndarray:
    """A mask file at the crop's size (ImageError naming the file when it cannot be read)."""
    a = load_mask(path)
    if a.shape != (size, size):
        a = np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR), np.float32)
    return a


def save_mask_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    p = Path(path)
    atomic_write_bytes(p, mask_png(mask))
    return p


