"""The app's session state without Qt: identity, references (attributes, painted masks), settings.

Masks are float32 (512, 512) arrays in [0, 1] painted on the analysed crop. A brush stroke is
recorded as a bounding-box diff (:class:`MaskEdit`: the rectangle's pixels before and after),
so undo/redo costs memory proportional to the stroke, not to the mask.

A session is saved as ``.triface``: a zip (or a folder) holding ``session.json`` and PNG masks.
Never pickle.  Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from triface_studio.core.semantics import ATTRIBUTES

MASK_SIZE = 512
FORMAT_VERSION = 1
MASK_MODES = ("replace", "add", "subtract")


class SessionError(ValueError):
    """A session file that cannot be read (the message names it)."""


def empty_mask(size: int = MASK_SIZE) -> np.ndarray:
    return np.zeros((size, size), np.float32)


@dataclass
class MaskEdit:
    """One undo step: the pixels of ``mask[y0:y1, x0:x1]`` before and after a stroke."""

    box: tuple[int, int, int, int]      # y0, y1, x0, x1
    before: np.ndarray
    after: np.ndarray

    def undo(self, mask: np.ndarray) -> None:
        y0, y1, x0, x1 = self.box
        mask[y0:y1, x0:x1] = self.before

    def redo(self, mask: np.ndarray) -> None:
        y0, y1, x0, x1 = self.box
        mask[y0:y1, x0:x1] = self.after


def _stamp(mask: np.ndarray, x: float, y: float, radius: float, hardness: float, erase: bool) -> tuple:
    """One round brush dab; returns the touched box (y0, y1, x0, x1) or None."""
    H, W = mask.shape
    r = max(0.5, float(radius))
    x0, x1 = max(0, int(np.floor(x - r))), min(W, int(np.ceil(x + r)) + 1)
    y0, y1 = max(0, int(np.floor(y - r))), min(H, int(np.ceil(y + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xx - x) ** 2 + (yy - y) ** 2) / r
    h = float(np.clip(hardness, 0.0, 1.0))
    # 1 inside hardness*r, falling linearly to 0 at r
    a = np.clip((1.0 - d) / max(1e-3, 1.0 - h), 0.0, 1.0) if h < 1.0 else (d <= 1.0).astype(np.float32)
    sub = mask[y0:y1, x0:x1]
    if erase:
        np.minimum(sub, 1.0 - a, out=sub)
    else:
        np.maximum(sub, a, out=sub)
    return (y0, y1, x0, x1)


def paint_stroke(mask: np.ndarray, points, radius: float, hardness: float = 0.8, erase: bool = False) -> MaskEdit | None:
    """Paint (or erase) along a polyline of (x, y) crop pixels, interpolated with dabs a third of
    the radius apart.  Changes ``mask`` in place and returns the undo step (None if nothing changed)."""
    pts = [(float(x), float(y)) for x, y in points]
    if not pts:
        return None
    before = mask.copy()
    dense = [pts[0]]
    step = max(0.5, radius / 3.0)
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        n = max(1, int(np.ceil(np.hypot(bx - ax, by - ay) / step)))
        dense += [(ax + (bx - ax) * t / n, ay + (by - ay) * t / n) for t in range(1, n + 1)]
    boxes = [b for b in (_stamp(mask, x, y, radius, hardness, erase) for x, y in dense) if b is not None]
    if not boxes:
        return None
    y0 = min(b[0] for b in boxes); y1 = max(b[1] for b in boxes)
    x0 = min(b[2] for b in boxes); x1 = max(b[3] for b in boxes)
    box = (y0, y1, x0, x1)
    after = mask[y0:y1, x0:x1].copy()
    prev = before[y0:y1, x0:x1].copy()
    if np.array_equal(after, prev):
        return None
    return MaskEdit(box, prev, after)


@dataclass
class Reference:
    path: str = ""
    attributes: list[str] = field(default_factory=list)     # a new reference takes nothing until asked
    mask: np.ndarray | None = None          # painted on the reference crop
    mask_mode: str = "add"

    def __post_init__(self):
        for a in self.attributes:
            if a not in ATTRIBUTES:
                raise SessionError(f"unknown attribute {a!r}")
        if self.mask_mode not in MASK_MODES:
            raise SessionError(f"mask mode must be one of {MASK_MODES}, not {self.mask_mode!r}")


@dataclass
class Session:
    identity_path: str = ""
    identity_mask: np.ndarray | None = None
    references: list[Reference] = field(default_factory=list)
    settings: dict = field(default_factory=lambda: {"yaw": 0.0, "pitch": 0.0, "refiner": "classical",
                                                     "seed": 0, "background": "identity"})
    path: str = ""                          # where it was saved / loaded
    dirty: bool = False
    result_identity: str | None = None      # the identity the shown result was made from (None: no result)

    @property
    def result_out_of_date(self) -> bool:
        """A result exists but was made from another identity than the one now open."""
        return self.result_identity is not None and self.result_identity != self.identity_path

    # -- serialisation ----------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": "triface-session", "version": FORMAT_VERSION,
            "identity": {"path": self.identity_path, "mask": "identity_mask.png" if self.identity_mask is not None else None},
            "references": [{"path": r.path, "attributes": list(r.attributes), "mask_mode": r.mask_mode,
                            "mask": f"reference_{i}_mask.png" if r.mask is not None else None}
                           for i, r in enumerate(self.references)],
            "settings": dict(self.settings),
        }

    def _files(self) -> dict[str, bytes]:
        files = {"session.json": json.dumps(self.to_json(), indent=2).encode()}
        if self.identity_mask is not None:
            files["identity_mask.png"] = _png(self.identity_mask)
        for i, r in enumerate(self.references):
            if r.mask is not None:
                files[f"reference_{i}_mask.png"] = _png(r.mask)
        return files

    def save(self, path: str | os.PathLike) -> Path:
        """Save as a zip (any name not a folder, usually ``*.triface``) or into an existing folder. Atomic."""
        p = Path(path)
        files = self._files()
        if p.is_dir():
            for name, data in files.items():
                _atomic_write(p / name, data)
        else:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in files.items():
                    z.writestr(name, data)
            _atomic_write(p, buf.getvalue())
        self.path, self.dirty = str(p), False
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Session":
        p = Path(path)
        try:
            if p.is_dir():
                read = lambda n: (p / n).read_bytes()  # noqa: E731
                doc = json.loads(read("session.json"))
                s = cls._from(doc, read)
            else:
                with zipfile.ZipFile(p) as z:
                    doc = json.loads(z.read("session.json"))
                    s = cls._from(doc, z.read)
        except SessionError:
            raise
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            raise SessionError(f"{p.name}: not a readable TriFace session ({e})") from None
        s.path = str(p)
        return s

    @classmethod
    def _from(cls, doc: dict, read) -> "Session":
        if doc.get("format") != "triface-session":
            raise SessionError("not a TriFace session file")
        if int(doc.get("version", 0)) > FORMAT_VERSION:
            raise SessionError(f"session format {doc.get('version')} is newer than this app understands")
        ident = doc.get("identity", {})
        s = cls(identity_path=str(ident.get("path", "")))
        if ident.get("mask"):
            s.identity_mask = _unpng(read(ident["mask"]))
        for r in doc.get("references", []):
            ref = Reference(str(r.get("path", "")), list(r.get("attributes", [])), None, r.get("mask_mode", "add"))
            if r.get("mask"):
                ref.mask = _unpng(read(r["mask"]))
            s.references.append(ref)
        s.settings.update(doc.get("settings", {}))
        return s


def _png(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.asarray(mask) * 255 + 0.5, 0, 255).astype(np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


def _unpng(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data)).convert("L")
    return np.asarray(im, np.float32) / 255.0


def load_mask_png(path: str | os.PathLike, size: int = MASK_SIZE) -> np.ndarray:
    im = Image.open(path).convert("L")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, np.float32) / 255.0


def save_mask_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    p = Path(path)
    _atomic_write(p, _png(mask))
    return p


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class Autosave:
    """Crash recovery: ``save(session)`` writes ``recovery.triface`` in ``folder``; ``pending()``
    tells whether one is left from a session that did not close cleanly; ``clear()`` on clean exit."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.file = self.folder / "recovery.triface"

    def save(self, session: Session) -> Path:
        path, dirty = session.path, session.dirty
        session.save(self.file)
        session.path, session.dirty = path, dirty
        return self.file

    def pending(self) -> bool:
        return self.file.is_file()

    def recover(self) -> Session:
        s = Session.load(self.file)
        s.path, s.dirty = "", True
        return s

    def clear(self) -> None:
        try:
            self.file.unlink()
        except FileNotFoundError:
            pass
