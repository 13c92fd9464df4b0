"""The edit document (no Qt): one owner of everything an edit is made from, and of its result.

:class:`EditSetup` holds the identity, the references with their attributes, the painted masks
and their modes (the identity's protect and bare-scalp masks), the view, the refine settings
(including the SDEdit score model), the background, seed, tier and device.  Widgets bind to it:
they change it through its methods and hear every change (``subscribe``); the request of an
edit is built from it (``to_request``); its files are its serialisation.  Derived state is
computed here once: ``dirty`` (changed since the last save), ``result_out_of_date`` (the result
was made from another identity).

One JSON codec for both files: the ``"request"`` object of a ``.triface`` session is the one of
an ``edit.json`` (``pipeline.requests.request_to_json`` / ``decode_request``), so the app opens
an ``edit.json`` and ``triface edit --from`` takes a ``.triface``.  A session is a zip (or a
folder) holding ``session.json``, the masks as PNG and the result (PNG images, the tri-plane as
safetensors).  Never pickle.  Photo paths are written relative to the session's folder, with the
folder they were relative to when saved as a fallback.  Writes are atomic.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from triface_studio.core.files import atomic_write_bytes
from triface_studio.core.images import ImageError, load_mask
from triface_studio.core.semantics import ATTRIBUTES
from triface_studio.pipeline.errors import EditError
from triface_studio.pipeline.requests import (BACKGROUNDS, MASK_MODES, REFINERS, TIERS, EditRequest, ReferenceSpec,
                                              RefineSettings, check_background, check_choice, check_float, check_int,
                                              decode_edit_json, decode_request, request_to_json)

from .brush import quantized
from .codec import (RESULT_ASSET, RESULT_PNGS, SetupError, mask_png, png_mask, read_result, relative_path, resolve_path,
                    result_files, upgrade_v1)

FORMAT = "triface-session"
FORMAT_VERSION = 2
#: the largest member of a session file that is read (masks, result images, the tri-plane)
MAX_MEMBER_BYTES = 1 << 30


@dataclass(eq=False)                # one reference is itself, whatever its values (and masks are arrays)
class ReferenceSetup:
    """One reference portrait: what to take from it and how its painted mask refines that."""

    path: str = ""
    attributes: list[str] = field(default_factory=list)     # a new reference takes nothing until asked
    mask: np.ndarray | None = None          # painted on the reference crop
    mask_mode: str = ReferenceSpec.mask_mode
    name: str = ""

    def __post_init__(self):
        self.attributes = list(self.attributes)
        for a in self.attributes:
            if a not in ATTRIBUTES:
                raise SetupError(f"unknown attribute {a!r}; known: {', '.join(ATTRIBUTES)}")
        if self.mask_mode not in MASK_MODES:
            raise SetupError(f"mask mode must be one of {', '.join(MASK_MODES)}, not {self.mask_mode!r}")


class EditSetup:
    """The document of one edit (see the module doc).

    Change it through ``update``, ``add_reference``, ``update_reference``, ``remove_reference``,
    ``masks_changed``, ``set_view`` and ``set_result``; every change calls the subscribers with
    the name of what changed ("identity", "references", "masks", "settings", "view", "result",
    "saved").  The view (yaw, pitch) is saved but does not make the setup dirty: turning
    the head is not work that could be lost.
    """

    def __init__(self, identity: str = "", references=(), identity_mask: np.ndarray | None = None,
                 bare_mask: np.ndarray | None = None, refine: RefineSettings | None = None,
                 background=EditRequest.background, seed: int = EditRequest.seed, tier: str = EditRequest.tier,
                 device: str = EditRequest.device, render_resolution: int = EditRequest.render_resolution,
                 identity_face_index: int | None = None,
                 yaw: float = 0.0, pitch: float = 0.0):
        self.identity = str(identity)
        self.references: list[ReferenceSetup] = list(references)
        self.identity_mask, self.bare_mask = identity_mask, bare_mask
        self.refine = refine or RefineSettings()
        self.background, self.seed, self.tier, self.device = background, int(seed), tier, device
        self.render_resolution, self.identity_face_index = int(render_resolution), identity_face_index
        self.yaw, self.pitch = float(yaw), float(pitch)
        self.path = ""                      # the session file it was saved to / loaded from
        self.result = None                  # EditResult or SavedResult
        self.result_identity: str | None = None     # the identity the result was made from
        self._revision = self._saved_revision = 0
        self._listeners: list[Callable[[str], None]] = []
        self._encoded: tuple | None = None         # (result, its encoded members)

    # -- change notification -------------------------------------------------------------
    def subscribe(self, fn: Callable[[str], None]) -> None:
        """``fn(what)`` after every change."""
        self._listeners.append(fn)

    def _changed(self, what: str, dirty: bool = True) -> None:
        if dirty:
            self._revision += 1
        for fn in list(self._listeners):
            fn(what)

    def update(self, **changes) -> None:
        """Set fields (identity, identity_mask, bare_mask, refine, background, seed, tier, device,
        render_resolution, identity_face_index); ``refine`` may also be given as a dict of its
        fields.  Values are checked; nothing changes when one is refused."""
        new = {}
        for k, v in changes.items():
            if k == "refine" and isinstance(v, dict):
                v = dataclasses.replace(self.refine, **v)
            new[k] = _checked(k, v)
        new = {k: v for k, v in new.items() if not _same(getattr(self, k), v)}
        if not new:
            return
        dirty = any(not _equivalent(getattr(self, k), v) for k, v in new.items())
        for k, v in new.items():
            setattr(self, k, v)
        self._changed("identity" if "identity" in new else "masks" if set(new) <= {"identity_mask", "bare_mask"}
                      else "settings", dirty)

    def masks_changed(self) -> None:
        """A painted mask changed in place (a brush stroke, undo, clear)."""
        self._changed("masks")

    def add_reference(self, ref: ReferenceSetup | None = None) -> ReferenceSetup:
        ref = ref or ReferenceSetup()
        self.references.append(ref)
        self._changed("references")
        return ref

    def update_reference(self, ref: ReferenceSetup, **changes) -> None:
        probe = dataclasses.replace(ref, **changes)          # checks attributes and mask mode
        changes = {k: getattr(probe, k) for k in changes if not _same(getattr(ref, k), getattr(probe, k))}
        if changes:
            dirty = any(not _equivalent(getattr(ref, k), v) for k, v in changes.items())
            for k, v in changes.items():
                setattr(ref, k, v)
            self._changed("masks" if set(changes) == {"mask"} else "references", dirty)

    def remove_reference(self, ref: ReferenceSetup) -> None:
        if ref in self.references:
            self.references.remove(ref)
            self._changed("references")

    def set_view(self, yaw: float, pitch: float) -> None:
        self.yaw, self.pitch = float(yaw), float(pitch)
        self._changed("view", dirty=False)

    def set_result(self, result, identity: str | None = None) -> None:
        """The result of an edit of ``identity`` (default: the open one); None removes it."""
        self.result = result
        self.result_identity = None if result is None else (self.identity if identity is None else identity)
        self._changed("result")

    # -- derived state -------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        """Changed since it was last saved or opened."""
        return self._revision != self._saved_revision

    @property
    def has_work(self) -> bool:
        return bool(self.identity or self.references)

    @property
    def result_out_of_date(self) -> bool:
        """A result exists but was made from another identity than the one now open."""
        return self.result is not None and self.result_identity is not None and self.result_identity != self.identity

    def mark_dirty(self) -> None:
        """Unsaved work that did not come from a change here (e.g. a recovered session)."""
        self._changed("saved")

    # -- the request -------------------------------------------------------------------
    def to_request(self, identity_image=None, reference_images=None) -> EditRequest:
        """The edit this setup describes.  Photos are its paths unless the caller has them loaded
        (``identity_image``, ``reference_images``: one per reference, None for not loaded);
        masks are copies at the precision the session file keeps, so a saved setup re-runs to
        the same pixels.  References without a photo are left out."""
        if not self.identity:
            raise SetupError("Open an identity photo first.")
        imgs = list(reference_images or [])
        refs = []
        for i, r in enumerate(self.references):
            img = imgs[i] if i < len(imgs) and imgs[i] is not None else r.path
            if img is None or (isinstance(img, str) and not img):
                continue
            if not r.attributes:
                raise SetupError(f"Reference {i + 1}: choose at least one attribute.")
            refs.append(ReferenceSpec(img, tuple(r.attributes), r.name or Path(r.path).name, _mask_copy(r.mask),
                                      r.mask_mode))
        if not refs:
            raise SetupError("Add a reference photo and choose what to take from it.")
        return EditRequest(self.identity if identity_image is None else identity_image, refs, Path(self.identity).name,
                           identity_mask=_mask_copy(self.identity_mask), bare_mask=_mask_copy(self.bare_mask),
                           refine=self.refine, background=self.background, seed=self.seed, device=self.device,
                           tier=self.tier, render_resolution=self.render_resolution,
                           identity_face_index=self.identity_face_index)

    # -- files ---------------------------------------------------------------------------
    def to_json(self, base: Path | None = None) -> dict:
        """``session.json``: the request object (paths relative to ``base`` where possible, masks
        naming PNG members), the view and the result's members."""
        req = EditRequest(self.identity or None, [ReferenceSpec(r.path or None, tuple(r.attributes), r.name, None,
                                                                r.mask_mode) for r in self.references],
                          Path(self.identity).name if self.identity else "", refine=self.refine,
                          background=self.background, seed=self.seed, device=self.device, tier=self.tier,
                          render_resolution=self.render_resolution, identity_face_index=self.identity_face_index)
        masks = {"masks": [f"reference_{i}_mask.png" if r.mask is not None else None
                           for i, r in enumerate(self.references)],
                 "identity_mask": "identity_mask.png" if self.identity_mask is not None else None,
                 "bare_mask": "bare_mask.png" if self.bare_mask is not None else None}
        doc = request_to_json(req, masks)
        doc["identity"] = relative_path(doc["identity"], base)
        for r in doc["references"]:
            r["image"] = relative_path(r["image"], base)
        doc["refine"]["score_model"] = relative_path(self.refine.score_model, base)
        result = None
        if self.result is not None:
            result = {"identity": relative_path(self.result_identity or None, base), "notes": list(self.result.notes),
                      "files": {k: f"result/{n}" for k, n in RESULT_PNGS.items()
                                if getattr(self.result, k, None) is not None}}
            result["files"]["t_com"] = f"result/{RESULT_ASSET}"
        return {"format": FORMAT, "version": FORMAT_VERSION, "paths_from": str(base) if base else None,
                "request": doc, "view": {"yaw": self.yaw, "pitch": self.pitch}, "result": result}

    def _files(self, base: Path | None) -> dict[str, bytes]:
        files = {"session.json": (json.dumps(self.to_json(base), indent=2) + "\n").encode()}
        if self.identity_mask is not None:
            files["identity_mask.png"] = mask_png(self.identity_mask)
        if self.bare_mask is not None:
            files["bare_mask.png"] = mask_png(self.bare_mask)
        for i, r in enumerate(self.references):
            if r.mask is not None:
                files[f"reference_{i}_mask.png"] = mask_png(r.mask)
        if self.result is not None:
            files.update(self._result_files())
        return files

    def _result_files(self) -> dict[str, bytes]:
        """The result's members, encoded once per result (autosave writes the session often; a
        6000 x 4000 photo takes a second to encode)."""
        if self._encoded is not None and self._encoded[0] is self.result:
            return self._encoded[1]
        files = result_files(self.result)
        self._encoded = (self.result, files)
        return files

    def write(self, path: str | os.PathLike) -> Path:
        """Write as a zip (any name not a folder, usually ``*.triface``) or into an existing
        folder, atomically; the setup does not adopt the file (see :meth:`save`)."""
        p = Path(path).absolute()
        base = p if p.is_dir() else p.parent
        files = self._files(base)
        if p.is_dir():
            for name, data in files.items():
                (p / name).parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(p / name, data)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in files.items():
                    z.writestr(name, data)
            atomic_write_bytes(p, buf.getvalue())
        return p

    def save(self, path: str | os.PathLike) -> Path:
        """:meth:`write`, then this is the setup's file and it is clean."""
        p = self.write(path)
        self.path, self._saved_revision = str(p), self._revision
        self._changed("saved", dirty=False)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike, with_result: bool = True) -> "EditSetup":
        """A ``.triface`` session (zip or folder, this format or version 1) or an ``edit.json``;
        ``with_result=False`` leaves a session's result unread (to re-run its edit).
        Anything unreadable -> SetupError naming the file; nothing is unpickled."""
        p = Path(path)
        try:
            if p.is_file() and not zipfile.is_zipfile(p):
                return cls._from_edit_json(p)
            if p.is_dir():
                def read(n):
                    f = p / n
                    if f.stat().st_size > MAX_MEMBER_BYTES:
                        raise SetupError(f"{p.name}: {n} is too large")
                    return f.read_bytes()
                return cls._from_session(p, json.loads(read("session.json")), read, p, with_result)
            with zipfile.ZipFile(p) as z:
                def read(n):
                    if z.getinfo(n).file_size > MAX_MEMBER_BYTES:
                        raise SetupError(f"{p.name}: {n} is too large")
                    return z.read(n)
                return cls._from_session(p, json.loads(read("session.json")), read, p.absolute().parent,
                                         with_result)
        except SetupError:
            raise
        except EditError as e:
            raise SetupError(f"{p.name}: {e}") from None
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as e:
            raise SetupError(f"{p.name}: not a readable TriFace session or edit.json "
                             f"({getattr(e, 'strerror', None) or e})") from None

    @classmethod
    def _from_edit_json(cls, p: Path) -> "EditSetup":
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            raise SetupError(f"{p.name}: neither a TriFace session nor a readable edit.json") from None
        req, _exports = decode_edit_json(doc, p.name)
        base = p.absolute().parent

        def mask(name):
            try:
                return load_mask(resolve_path(name, base, None))
            except ImageError as e:
                raise SetupError(f"{p.name}: {e}") from None
        return cls._from_request(req, base, None, mask, p.name)

    @classmethod
    def _from_session(cls, p: Path, doc, read, base: Path, with_result: bool = True) -> "EditSetup":
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SetupError(f"{p.name}: not a TriFace session file")
        version = doc.get("version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise SetupError(f"{p.name}: session format {version!r} is newer than this app understands")
        if version < 2:
            doc = upgrade_v1(doc)
        req = doc.get("request")
        if not isinstance(req, dict):
            raise SetupError(f"{p.name}: has no \"request\" object")
        req = decode_request(req, f"{p.name}: request")
        old = doc.get("paths_from") if isinstance(doc.get("paths_from"), str) else None
        s = cls._from_request(req, base, old, lambda n: png_mask(read(n), f"{p.name}: {n}"), p.name)
        view = doc.get("view") if isinstance(doc.get("view"), dict) else {}
        s.yaw = check_float(view.get("yaw", 0.0), f"{p.name}: view.yaw", "yaw")
        s.pitch = check_float(view.get("pitch", 0.0), f"{p.name}: view.pitch", "pitch")
        res = doc.get("result")
        if with_result and isinstance(res, dict) and isinstance(res.get("files"), dict):
            s.result = read_result(res, read, p.name)
            ident = res.get("identity")
            s.result_identity = resolve_path(ident, base, old) if isinstance(ident, str) and ident else s.identity
        s.path = str(p.absolute())
        return s

    @classmethod
    def _from_request(cls, req: dict, base: Path, old: str | None, read_mask, where: str) -> "EditSetup":
        def num(check, key, default, limit=None):
            v = req.get(key)
            return check(default if v is None else v, f"{where}: request.{key}", limit or key)

        rs = req.get("refine") or {}

        def rnum(check, key, default):
            v = rs.get(key)
            return check(default if v is None else v, f"{where}: request.refine.{key}", key)

        score = rs.get("score_model")
        if score is not None and not isinstance(score, str):
            raise SetupError(f"{where}: request.refine.score_model must be a folder name, not {score!r}")
        d = RefineSettings()                # the defaults
        refine = RefineSettings(
            refiner=check_choice(rs.get("refiner") or d.refiner, f"{where}: request.refine.refiner", REFINERS),
            dilate_radius=rnum(check_int, "dilate_radius", d.dilate_radius),
            blur_sigma=rnum(check_float, "blur_sigma", d.blur_sigma), t0=rnum(check_float, "t0", d.t0),
            steps=rnum(check_int, "steps", d.steps), repeats=rnum(check_int, "repeats", d.repeats),
            score_model=resolve_path(score, base, old) if score else d.score_model)
        refs = []
        for i, r in enumerate(req.get("references") or []):
            try:
                refs.append(ReferenceSetup(resolve_path(r["image"], base, old) if r.get("image") else "",
                                           list(r.get("attributes") or []),
                                           read_mask(r["mask"]) if r.get("mask") else None,
                                           r.get("mask_mode") or ReferenceSpec.mask_mode, r.get("name") or ""))
            except SetupError as e:
                raise SetupError(f"{where}: reference {i + 1}: {e}") from None
        bg = req.get("background")
        face = req.get("identity_face_index")
        s = cls(identity=resolve_path(req["identity"], base, old) if req.get("identity") else "", references=refs,
                identity_mask=read_mask(req["identity_mask"]) if req.get("identity_mask") else None,
                bare_mask=read_mask(req["bare_mask"]) if req.get("bare_mask") else None, refine=refine,
                background=(EditRequest.background if bg is None
                            else check_background(bg, f"{where}: request.background")),
                seed=num(check_int, "seed", EditRequest.seed),
                tier=check_choice(req.get("tier") or EditRequest.tier, f"{where}: request.tier", TIERS),
                device=req.get("device") or EditRequest.device,
                render_resolution=num(check_int, "render_resolution", EditRequest.render_resolution),
                identity_face_index=None if face is None else check_int(face, f"{where}: request.identity_face_index",
                                                                        "face_index"))
        return s


# -- helpers -------------------------------------------------------------------------------------
def _checked(key: str, v):
    try:
        if key == "identity":
            return str(v or "")
        if key in ("identity_mask", "bare_mask"):
            return None if v is None else np.asarray(v, np.float32)
        if key == "refine":
            if not isinstance(v, RefineSettings):
                raise SetupError(f"refine must be RefineSettings, not {type(v).__name__}")
            check_choice(v.refiner, "refiner", REFINERS)
            return v
        if key == "background":
            return v if isinstance(v, str) and v in BACKGROUNDS else check_background(v)
        if key == "seed":
            return check_int(v, "seed")
        if key == "tier":
            return check_choice(v, "tier", TIERS)
        if key == "device":
            return str(v)
        if key == "render_resolution":
            return check_int(v, "render_resolution")
        if key == "identity_face_index":
            return None if v is None else check_int(v, "face index", "face_index")
    except EditError as e:
        raise SetupError(str(e)) from None
    raise SetupError(f"an edit setup has no field {key!r}")


def _same(a, b) -> bool:
    """The very same value (a mask: the same array)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b
    return a == b


def _equivalent(a, b) -> bool:
    """The same as far as an edit can tell: no mask and an empty one are alike (a canvas made
    for a photo is no change of the setup)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if (a is None or not np.asarray(a).any()) and (b is None or not np.asarray(b).any()):
            return True
        return a is b or (a is not None and b is not None and np.array_equal(a, b))
    return a == b


def _mask_copy(mask) -> np.ndarray | None:
    return quantized(mask) if mask is not None and np.asarray(mask).any() else None


class Autosave:
    """Crash recovery: ``save(setup)`` writes ``recovery.triface`` in ``folder`` (the setup keeps
    its own file and stays dirty); ``pending()`` tells whether one is left from a session that
    did not close cleanly; ``clear()`` after a save or an explicit discard."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.file = self.folder / "recovery.triface"

    def save(self, setup: EditSetup) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return setup.write(self.file)

    def pending(self) -> bool:
        return self.file.is_file()

    def recover(self) -> EditSetup:
        s = EditSetup.load(self.file)
        s.path = ""
        s.mark_dirty()                  # unsaved work
        return s

    def clear(self) -> None:
        try:
            self.file.unlink()
        except FileNotFoundError:
            pass
