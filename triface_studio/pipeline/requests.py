"""Immutable request objects and the result of one edit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np

Background = Union[Literal["identity", "reference", "transparent"], tuple]


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference portrait and the attributes to take from it.

    ``user_mask`` (float32 (H, W) in [0, 1]) is painted on the reference's 512 px crop and
    refines the predicted region with ``mask_mode`` (replace | add | subtract); a mask of
    another size is resized (with a notice in the result's notes).
    """

    image: Any                      # np.ndarray uint8 (H, W, 3) or a path
    attributes: tuple[str, ...]
    name: str = ""
    user_mask: np.ndarray | None = None
    mask_mode: str = "add"


@dataclass(frozen=True)
class RefineSettings:
    """Refinement of the coarse composite inside M^sde (eqs. 18-19).

    ``dilate_radius``/``blur_sigma`` shape M^sde = Blur(Dilate(M_k u M_gap)); ``t0``, ``steps``,
    ``repeats`` and ``score_model`` (a diffusers folder) are used by the SDEdit refiner only.
    """

    refiner: str = "classical"
    dilate_radius: int = 9
    blur_sigma: float = 4.0
    t0: float = 0.5
    steps: int = 50
    repeats: int = 1
    score_model: str | None = None


@dataclass(frozen=True)
class EditRequest:
    """Everything one edit needs.  ``identity_mask`` protects parts of the identity (see the
    field).  ``background``: "identity" (default), "reference",
    "transparent" or an (r, g, b) colour in [0, 1] or 0-255.  ``render_resolution`` is the
    resolution T^blend is rendered at before upsampling to the 512 px crop."""

    identity: Any                   # np.ndarray uint8 (H, W, 3) or a path
    references: list = field(default_factory=list)
    identity_name: str = ""
    #: painted on the identity's 512 px crop (float32 (H, W) in [0, 1], or uint8): where it is 1
    #: the identity's pixels are protected -- kept exactly, whatever the references bring
    identity_mask: Any = None
    #: painted on the identity's crop like ``identity_mask``: where it is 1 the old hair that the
    #: new hair does not cover becomes bare skin (the default grows new hair there on the scalp)
    bare_mask: Any = None
    refine: RefineSettings = RefineSettings()
    background: Background = "identity"
    seed: int = 0
    device: str = "cpu"
    tier: str = "bundled"
    render_resolution: int = 256
    #: which face of the identity photo to edit (0 = the largest; None: the analyser's default)
    identity_face_index: int | None = None


@dataclass
class EditResult:
    """What one edit produced.

    Shape: s_blend uint8 (512, 512) labels; coarse, refined float32 (512, 512, 3) in [0, 1];
    composite uint8 (512, 512, 3) (I^com); composite_full uint8 (H, W, 3) (pasted into the
    identity's photo); gap_mask, sde_mask, edit_region float32 (512, 512); alpha float32
    (512, 512) foreground opacity (used for transparent backgrounds) or None.
    """

    t_blend: Any
    t_com: Any
    s_blend: np.ndarray
    coarse: np.ndarray
    refined: np.ndarray
    composite: np.ndarray
    composite_full: np.ndarray
    gap_mask: np.ndarray
    sde_mask: np.ndarray
    edit_region: np.ndarray
    timings: dict
    notes: list
    identity: Any
    references: list
    request: EditRequest | None = None
    alpha: np.ndarray | None = None
    s_blend_probs: np.ndarray | None = None


# -- validation at the boundary ------------------------------------------------------------------
#: (lowest, highest) of every number an edit takes, for the CLI, edit.json and the app alike.
#: The upper limits keep one edit within a few GB on a CPU: a 2048 px view is ~4 M rays, a
#: 384^3 mesh grid 57 M density samples, 1024 px renders of T^blend ~1 M rays.
LIMITS: dict[str, tuple[float, float]] = {
    "views": (0, 720),
    "view_resolution": (16, 2048),
    "yaw_range": (0.0, 180.0),
    "pitch_range": (0.0, 85.0),
    "mesh_resolution": (16, 384),
    "render_resolution": (32, 1024),
    "dilate_radius": (0, 128),
    "blur_sigma": (0.0, 64.0),
    "t0": (0.0, 1.0),
    "steps": (1, 1000),
    "repeats": (1, 16),
    "seed": (0, 2**32 - 1),
    "face_index": (0, 99),
    "yaw": (-180.0, 180.0),
    "pitch": (-85.0, 85.0),
}
#: The choices of an edit's settings, read by the CLI's parsers, the document's checks and the
#: app's combo boxes alike: a new one is added here.  The defaults are those of the dataclasses
#: above (``RefineSettings().refiner``, ``EditRequest.tier``, ``ReferenceSpec.mask_mode``).
MASK_MODES = ("replace", "add", "subtract")    # core.masks.combine_user_mask's modes
BACKGROUNDS = ("identity", "reference", "transparent")
REFINERS = ("classical", "sdedit")             # pipeline.refiners.make_refiner's refiners
TIERS = ("bundled", "neural")                  # the model tiers an edit runs on
VIDEOS = ("gif", "mp4")
ORBITS = ("turntable", "yaw", "pitch")


def _raise(message: str):
    from .errors import EditError

    raise EditError(message)


def check_int(value, what: str, key: str | None = None) -> int:
    """``value`` (an int, or a float/str holding a whole number) as an int within ``LIMITS[key]``
    (``key`` defaults to ``what``); anything else -> EditError naming ``what``."""
    lo, hi = LIMITS[key or what]
    ok = not isinstance(value, bool)
    try:
        f = float(value) if ok else float("nan")
    except (TypeError, ValueError):
        f = float("nan")
    if not (ok and f == f and lo <= f <= hi and f == int(f)):
        _raise(f"{what} must be a whole number from {int(lo)} to {int(hi)}, not {value!r}")
    return int(f)


def check_float(value, what: str, key: str | None = None) -> float:
    """``value`` as a finite float within ``LIMITS[key]``; anything else -> EditError naming ``what``."""
    lo, hi = LIMITS[key or what]
    try:
        f = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        f = float("nan")
    if not (lo <= f <= hi):                   # also false for NaN
        _raise(f"{what} must be a number from {lo:g} to {hi:g}, not {value!r}")
    return f


def check_choice(value, what: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        _raise(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_background(value, what: str = "background") -> Background:
    """identity | reference | transparent, or a colour: 3 numbers, all in [0, 1] or all in 0-255
    (``"R,G,B"`` text, a list or a tuple)."""
    if isinstance(value, str) and value in BACKGROUNDS:
        return value
    parts = value.split(",") if isinstance(value, str) else value
    try:
        c = [float(v) for v in parts] if not isinstance(parts, (bool, int, float)) and parts is not None else []
    except (TypeError, ValueError):
        c = []
    if len(c) != 3 or not all(0.0 <= v <= 255.0 for v in c):   # NaN fails the range test
        _raise(f"{what} must be identity, reference, transparent or a colour R,G,B (0-255 or 0-1), "
               f"not {value!r}")
    return tuple(c)


def available_devices() -> list[str]:
    """The devices torch can run on here, e.g. ['cpu', 'cuda', 'cuda:0', 'cuda:1']."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(value, what: str = "device") -> str:
    """A device torch has here; anything else -> EditError listing the ones there are."""
    have = available_devices()
    if not isinstance(value, str) or value not in have:
        _raise(f"{what} {value!r} is not available here; devices: {', '.join(have)}")
    return value


def validate_request(request: EditRequest) -> None:
    """Check every setting of ``request`` against ``LIMITS`` (EditError naming the field); the
    pipeline calls this before any work, whoever built the request."""
    if not request.references:
        _raise("an edit needs at least one reference and attribute")
    for i, ref in enumerate(request.references):
        if not isinstance(ref, ReferenceSpec):
            _raise(f"reference {i + 1} is not a ReferenceSpec")
        if not ref.attributes or not all(isinstance(a, str) and a for a in ref.attributes):
            _raise(f"reference {i + 1} has no attribute to take")
        check_choice(ref.mask_mode, f"the mask mode of reference {i + 1}", MASK_MODES)
        if ref.user_mask is not None:
            _check_mask(ref.user_mask, f"the mask of reference {i + 1}")
    if request.identity_mask is not None:
        _check_mask(request.identity_mask, "the identity mask")
    if request.bare_mask is not None:
        _check_mask(request.bare_mask, "the bare-scalp mask")
    r = request.refine
    check_int(r.dilate_radius, "dilate_radius")
    check_float(r.blur_sigma, "blur_sigma")
    check_float(r.t0, "t0")
    check_int(r.steps, "steps")
    check_int(r.repeats, "repeats")
    check_int(request.seed, "seed")
    check_int(request.render_resolution, "render_resolution")
    if request.identity_face_index is not None:
        check_int(request.identity_face_index, "face_index")
    if not isinstance(request.background, str) or request.background not in BACKGROUNDS:
        check_background(request.background)
    if isinstance(request.tier, str):
        check_choice(request.tier, "tier", TIERS)
    check_device(request.device)


def _check_mask(mask, what: str) -> None:
    m = np.asarray(mask)
    if m.ndim not in (2, 3) or min(m.shape[:2]) < 1 or m.dtype.kind not in "biuf":
        _raise(f"{what} must be a grey or colour image, not an array of shape {m.shape} ({m.dtype})")
    if m.dtype.kind == "f" and not np.isfinite(m).all():
        _raise(f"{what} holds NaN or infinite values")


#: the orbit exports' default amplitudes (degrees): the turntable turns the head +-45 degrees
DEFAULT_YAW_RANGE, DEFAULT_PITCH_RANGE = 45.0, 15.0
#: the default size of an orbit view (px) and of the mesh's marching-cubes grid
DEFAULT_VIEW_RESOLUTION, DEFAULT_MESH_RESOLUTION = 256, 128


def validate_exports(views=0, view_resolution=DEFAULT_VIEW_RESOLUTION, yaw_range=DEFAULT_YAW_RANGE,
                     pitch_range=DEFAULT_PITCH_RANGE, orbit="turntable", mesh=False,
                     mesh_resolution=DEFAULT_MESH_RESOLUTION, video=None) -> dict:
    """The exports of an edit, checked against ``LIMITS`` -> a dict of clean values."""
    return {"views": check_int(views, "views"), "view_resolution": check_int(view_resolution, "view_resolution"),
            "yaw_range": check_float(yaw_range, "yaw_range"), "pitch_range": check_float(pitch_range, "pitch_range"),
            "orbit": check_choice(orbit, "orbit", ORBITS), "mesh": bool(mesh),
            "mesh_resolution": check_int(mesh_resolution, "mesh_resolution"),
            "video": None if video is None else check_choice(video, "video", VIDEOS)}


# -- edit.json ------------------------------------------------------------------------------------
def _field(doc, key: str, kinds, where: str, default=None):
    v = doc.get(key, default)
    if v is None:
        return default
    if not isinstance(v, kinds):
        names = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        names = names.replace("str", "text").replace("dict", "an object").replace("float", "number")
        _raise(f"{where}.{key} must be {names}, not {v!r}"[:300])
    return v


def request_to_json(request, inputs: dict | None = None) -> dict:
    """The "request" object of edit.json and of a ``.triface`` session: the parameters that re-run
    an edit.  Photos given as paths are written as absolute paths; ``inputs`` names the mask files
    (``masks``: one per reference, ``identity_mask``, ``bare_mask``).  Read back by :func:`decode_request`."""
    from pathlib import Path

    r = request.refine
    refs = []
    for i, spec in enumerate(request.references):
        d = {"image": str(Path(spec.image).absolute()) if isinstance(spec.image, (str, Path)) else None,
             "name": spec.name, "attributes": list(spec.attributes), "mask_mode": spec.mask_mode,
             "mask": None}
        if inputs and i < len(inputs.get("masks", [])):
            d["mask"] = inputs["masks"][i]
        refs.append(d)
    bg = request.background if isinstance(request.background, str) else list(request.background)
    return {
        "identity": str(Path(request.identity).absolute()) if isinstance(request.identity, (str, Path)) else None,
        "identity_name": request.identity_name,
        "identity_mask": (inputs or {}).get("identity_mask"),
        "bare_mask": (inputs or {}).get("bare_mask"),
        "references": refs,
        "refine": {"refiner": r.refiner, "dilate_radius": r.dilate_radius, "blur_sigma": r.blur_sigma,
                   "t0": r.t0, "steps": r.steps, "repeats": r.repeats, "score_model": r.score_model},
        "background": bg, "seed": request.seed, "device": request.device, "tier": request.tier,
        "render_resolution": request.render_resolution,
        "identity_face_index": getattr(request, "identity_face_index", None),
    }


def decode_edit_json(doc, where: str = "edit.json") -> tuple[dict, dict]:
    """The structure of an edit.json (what ``write_edit_outputs`` wrote, or a hand-made one) checked
    field by field -> (request dict, exports dict) holding only well-typed values; a wrong one
    -> EditError naming the field, e.g. ``edit.json: request.references[0].attributes ...``.
    Numbers are range-checked later, with the CLI's, by ``check_int`` / ``check_float``."""
    if not isinstance(doc, dict) or doc.get("format") != "triface-edit":
        _raise(f"{where}: not an edit.json written by triface edit (no \"format\": \"triface-edit\" object)")
    req = _field(doc, "request", dict, where, None)
    if req is None:
        _raise(f"{where}: has no \"request\" object")
    exp = _field(doc, "exports", dict, where, {})
    out = decode_request(req, f"{where}: request")
    exports = {k: _field(exp, k, (int, float, str), f"{where}: exports")
               for k in ("views", "yaw_range", "pitch_range", "view_resolution", "mesh_resolution")}
    exports["mesh"] = _field(exp, "mesh", (bool, int), f"{where}: exports")
    exports["video"] = _field(exp, "video", str, f"{where}: exports")
    exports["orbit"] = _field(exp, "orbit", str, f"{where}: exports")
    return out, exports


def decode_request(req: dict, w: str = "request") -> dict:
    """The "request" object (of edit.json or a session, see :func:`request_to_json`) checked field
    by field -> a dict of well-typed values (EditError naming the field otherwise)."""
    out: dict = {}
    for key in ("identity", "identity_name", "identity_mask", "bare_mask", "device", "tier"):
        out[key] = _field(req, key, str, w)
    refs = _field(req, "references", list, w, [])
    out["references"] = []
    for i, r in enumerate(refs):
        wr = f"{w}.references[{i}]"
        if not isinstance(r, dict):
            _raise(f"{wr} must be an object with image and attributes, not {r!r}"[:300])
        attrs = _field(r, "attributes", (list, str), wr, [])
        attrs = [a.strip() for a in attrs.split(",")] if isinstance(attrs, str) else attrs
        if not all(isinstance(a, str) for a in attrs):
            _raise(f"{wr}.attributes must be a list of names such as \"hair\", not {attrs!r}"[:300])
        out["references"].append({"image": _field(r, "image", str, wr), "attributes": [a for a in attrs if a],
                                  "mask": _field(r, "mask", str, wr), "name": _field(r, "name", str, wr, ""),
                                  "mask_mode": _field(r, "mask_mode", str, wr, ReferenceSpec.mask_mode)})
    out["refine"] = dict(_field(req, "refine", dict, w, {}))
    for key in ("seed", "render_resolution", "identity_face_index"):
        out[key] = _field(req, key, (int, float, str), w)
    out["background"] = _field(req, "background", (str, list), w)
    return out
