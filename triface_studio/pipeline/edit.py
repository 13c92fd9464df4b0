"""The edit pipeline: identity + (reference, attributes, user mask) pairs -> edited photo and
tri-plane (paper sections 3.1-3.3).

Stages (each timed, each a cancellation point; renders also check between ray chunks):

``analyze``  face analysis of identity and references (cached by image content)
``encode``   image-to-plane of every portrait (cached by content and tier)
``align``    the semantic alignment step: each tri-plane's semantics rendered frontally,
             M_k^ref (with the user's mask) and M_-k^id resampled onto the XY plane
``blend``    eqs. 7-12, references applied in order
``render``   T^blend at the identity's camera: I^ref_hat and S^blend
``composite`` eqs. 13-18: coarse composite, background, gaps + mean skin, M^sde
``refine``   eq. 19 (classical or SDEdit)
``final``    eq. 20 and paste-back into the identity's full photo
``reencode`` I^com -> T^com
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core import blending, colour, compositing, masks, triplane
from triface_studio.core.cameras import Camera
from triface_studio.core.rays import source_pixels
from triface_studio.core.images import ImageError, load_image, to_float, to_uint8
from triface_studio.core.semantics import (BACKGROUND, CLASS_NAMES, EYEGLASSES, HAIR, L_BROW, L_EYE, L_LIP, MOUTH,
                                           NUM_CLASSES, R_BROW, R_EYE, SKIN, U_LIP, attribute_classes)
from triface_studio.models.face.errors import NoFaceError

from . import composite as composite_stage
from .errors import Cancelled, EditError
from .refiners import ClassicalRefiner, make_refiner
from .requests import EditRequest, EditResult, ReferenceSpec, validate_request

CROP = 512
#: a reference needs at least this many pixels of an attribute (in its 512 px crop)
MIN_ATTRIBUTE_PIXELS = 60
#: hair less sharp than this (:func:`hair_sharpness`) is out of focus in its photo: the user is told
SOFT_HAIR = 0.004
#: a pixel that covers less of its reference's photo than this (in pixels) shows a stretched texel
MIN_PHOTO_AREA = 0.3
#: eyeglasses the parser finds fewer pixels of on the result are hard to see: the user is told
#: (the eval's no-op line, ``evaluation.realism.MIN_GLASSES_PX``, is the same number)
MIN_SEEN_GLASSES_PX = 200
ProgressFn = Callable[[str, float], None]
#: the stages of :meth:`EditPipeline.run`, in the order they run (progress reports name them)
STAGES = ("analyze", "encode", "align", "blend", "render", "composite", "refine", "final", "reencode")


def overall_progress(stage: str, fraction: float) -> float | None:
    """A stage's own progress as the whole edit's: each stage is an equal share, in order; None
    for a name that is not one of :data:`STAGES`."""
    if stage not in STAGES:
        return None
    return (STAGES.index(stage) + min(1.0, max(0.0, float(fraction)))) / len(STAGES)


def content_key(image: np.ndarray, *extra) -> str:
    """A stable key of an image's pixels (and anything else that changes the result)."""
    h = hashlib.blake2b(digest_size=16)
    a = np.ascontiguousarray(image)
    h.update(str((a.shape, str(a.dtype)) + tuple(extra)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _name_of(image, name: str, fallback: str) -> str:
    if name:
        return name
    if isinstance(image, (str, Path)):
        return Path(image).name
    return fallback


class _Job:
    """Timings, progress and cancellation of one run."""

    def __init__(self, progress: ProgressFn | None, cancel: threading.Event | None):
        self.progress, self.cancel = progress, cancel
        self.timings: dict[str, float] = {}
        self.stage = ""

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the edit was cancelled")

    def report(self, fraction: float) -> None:
        self.check()
        if self.progress is not None:
            self.progress(self.stage, float(fraction))

    @contextmanager
    def __call__(self, name: str):
        self.check()
        self.stage = name
        if self.progress is not None:
            self.progress(name, 0.0)
        t0 = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        if self.progress is not None:
            self.progress(name, 1.0)
        self.check()


@functools.cache
def _one_heap() -> bool:
    """Ask glibc's malloc to serve every thread of the process from one arena (``mallopt``
    M_ARENA_MAX = 1), once, when the first pipeline is made: before its models start threads.

    Why: glibc gives each new thread an arena of its own, and what a worker thread frees stays
    in its arena, unused by the rest.  With the lifts on two threads the edit's peak memory
    rose from 1.36 to 1.58-1.63 GB (`triface bench --stage edit`), over the 1.5 GB target; with
    one arena it is 1.35-1.37 GB at the same speed (big blocks are mmapped either way, and two
    threads hardly contend for the lock of the small ones).  False (nothing done) where the C
    library has no mallopt (not glibc)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    M_ARENA_MAX = -8
    return bool(mallopt(M_ARENA_MAX, 1))


#: held while an edit lifts photos on two threads with torch's threads halved (the count is the
#: process's: two edits doing it at once would restore each other's)
_HALF_THREADS = threading.Lock()


def plane_to_image(plane_mask: torch.Tensor, camera: Camera, size: int, depth: float = 0.0,
                   surface: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of :func:`triface_studio.core.blending.plane_mask`: read an XY-plane mask where
    each pixel's ray meets the plane z = ``depth``, or, with ``surface`` ((size, size) ray
    distances of a render, inf or NaN where nothing was hit), at the surface the pixel shows
    (a turned head's side, far from z = 0, then reads its own texels).  Beyond the plane's box
    the mask reads 0.  Shape: (R, R) -> (size, size)"""
    from triface_studio.core.rays import camera_rays

    cam = camera.to(plane_mask.device)
    o, d = camera_rays(cam.cam2world[None].float(), cam.K[None].float(), size)
    t = (depth - o[..., 2]) / torch.where(d[..., 2].abs() < 1e-6, torch.full_like(d[..., 2], 1e-6), d[..., 2])
    if surface is not None:
        hit = surface.reshape(1, -1).to(t)
        t = torch.where(torch.isfinite(hit), hit, t)
    p = o + t[..., None] * d                                        # (1, M, 3)
    grid = (p[..., :2] / triplane.BOX_HALF).reshape(1, size, size, 2)  # x -> columns, y -> rows
    out = F.grid_sample(plane_mask.float()[None, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out[0, 0].clamp(0, 1)


def _soft_region(labels_probs: torch.Tensor, classes) -> torch.Tensor:
    return masks.class_mask_from_probs(labels_probs, classes)[0, 0]


class EditPipeline:
    """Runs edits with one model tier on one device.

    ``tier``: "bundled", "neural" or a ready :class:`~triface_studio.models.base.Tier` object;
    ``analyzer``: a ``FaceAnalyzer`` (default: the bundled one, created on first use);
    ``checkpoint_dir``: the neural tier's checkpoint folder (default: the user's models folder).
    """

    def __init__(self, tier="bundled", device: str = "cpu", analyzer=None, checkpoint_dir: str | None = None):
        _one_heap()         # before the models start threads of their own
        self.device = str(device)
        self._tier_spec = tier
        self._tier = None if isinstance(tier, str) else tier
        self._analyzer = analyzer
        self.checkpoint_dir = checkpoint_dir
        self._analyses: dict[str, object] = {}
        self._assets: dict[str, object] = {}
        self._lock = threading.RLock()

    # -- models --------------------------------------------------------------------------
    @property
    def tier(self):
        with self._lock:
            if self._tier is None:
                self._tier = self._load_tier(self._tier_spec)
            return self._tier

    @property
    def tier_name(self) -> str:
        return self._tier_spec if isinstance(self._tier_spec, str) else getattr(self._tier_spec, "name", "custom")

    def _load_tier(self, name: str):
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise EditError("--device cuda was asked for, but torch sees no CUDA device")
        if name == "bundled":
            try:
                from triface_studio.models.bundled import BundledTier
            except ImportError as e:
                raise EditError(f"the bundled model tier is not available ({e})") from None
            return BundledTier(device=self.device)
        if name == "neural":
            from triface_studio.models.neural import NeuralTier

            try:
                return NeuralTier.from_checkpoints(self.checkpoint_dir, self.device)
            except (ValueError, OSError) as e:
                raise EditError(f"the neural tier could not be loaded: {e}") from None
        raise EditError(f"unknown model tier {name!r}; use bundled or neural")

    @property
    def analyzer(self):
        with self._lock:
            if self._analyzer is None:
                from triface_studio.models.face import FaceAnalyzer

                self._analyzer = FaceAnalyzer(device=self.device)
            return self._analyzer

    # -- analysis and encoding (cached) -----------------------------------------------------
    def load(self, image, name: str = "", role: str = "image") -> tuple[np.ndarray, str]:
        """A path or an array -> (RGB uint8 array, display name); unreadable files -> EditError."""
        nm = _name_of(image, name, role)
        if isinstance(image, (str, Path)):
            try:
                arr = load_image(image)
            except ImageError as e:
                raise EditError(f"{role} {e}") from None
            return arr, nm
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, -1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise EditError(f"{role} {nm}: expected an RGB image, got an array of shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = to_uint8(arr) if arr.dtype.kind == "f" else np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr[..., :3]), nm

    def analyze(self, image, name: str = "", role: str = "image", face_index: int | None = None):
        """Face analysis of a portrait (cached by pixel content and face). No face -> EditError naming it."""
        arr, nm = self.load(image, name, role)
        key = content_key(arr) if face_index is None else content_key(arr, face_index)
        with self._lock:
            fa = self._analyses.get(key)
        if fa is None:
            try:
                which = {} if face_index is None else {"face_index": face_index}
                fa = self.analyzer.analyze(arr, name=nm, parse=True, **which)
            except NoFaceError as e:
                detail = str(e).split(": ", 1)[-1]               # the analyser's reason, without the name
                raise EditError(f"{role} {nm}: {detail}") from None
            fa = _outside_is_background(fa)
            with self._lock:
                self._analyses[key] = fa
        if getattr(fa, "name", nm) != nm:
            fa = _with(fa, name=nm)
            with self._lock:
                self._analyses[key] = fa
        return fa

    def encode(self, fa):
        """Image-to-plane (cached by the crop's content, labels and the tier)."""
        labels = getattr(fa, "labels", None)
        key = content_key(fa.crop, self.tier_name, None if labels is None else content_key(labels))
        with self._lock:
            asset = self._assets.get(key)
        if asset is None:
            with torch.no_grad():
                asset = self.tier.encode(fa)
            with self._lock:
                self._assets[key] = asset
        return asset

    def encode_all(self, analyses: list, report: Callable[[float], None] | None = None) -> list:
        """:meth:`encode` of several photos, in order; two at a time where the tier says its
        encoder may run on two threads at once (``concurrent_encode``: the bundled lift is much
        single-threaded numpy, which leaves the second core idle).  ``report(fraction)`` after
        each photo, on the calling thread (it may raise Cancelled: the photos not started are
        dropped, the running ones finish, and no thread outlives the call)."""
        n = len(analyses)
        if n < 2 or not getattr(self.tier, "concurrent_encode", False):
            out = []
            for i, fa in enumerate(analyses):
                out.append(self.encode(fa))
                if report is not None:
                    report((i + 1) / n)
            return out
        # each thread's torch operations on half of torch's threads: on 2 cores, two threads of
        # two each waited on each other (the two lifts took 0.6-0.87 s against 0.57-0.66 s)
        with _HALF_THREADS:
            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, threads // 2))
            try:
                with ThreadPoolExecutor(max_workers=2, thread_name_prefix="triface-encode") as pool:
                    futures = [pool.submit(self.encode, fa) for fa in analyses]
                    try:
                        out = []
                        for i, f in enumerate(futures):
                            out.append(f.result())
                            if report is not None:
                                report((i + 1) / n)
                        return out
                    except BaseException:
                        for f in futures:
                            f.cancel()
                        raise
            finally:
                torch.set_num_threads(threads)

    def predicted_mask(self, fa, attributes) -> np.ndarray:
        """Predicted region of ``attributes`` on this analysed crop (parser labels). -> (512, 512)"""
        classes = self._classes(attributes)
        labels = self._labels(fa)
        return masks.class_mask(labels, classes).numpy().astype(np.float32)

    def _labels(self, fa) -> np.ndarray:
        labels = getattr(fa, "labels", None)
        if labels is None:
            labels = self.analyzer.parse(fa.crop)
        if labels is None:
            raise EditError(f"{getattr(fa, 'name', 'the photo')}: no semantic map (the face parser's weights "
                            f"are not installed); editing needs them")
        return np.asarray(labels)

    @staticmethod
    def _classes(attributes) -> frozenset[int]:
        try:
            return attribute_classes(list(attributes))
        except KeyError as e:
            raise EditError(str(e.args[0])) from None

    def _given(self, spec, fa) -> frozenset[int]:
        """The classes taken from a reference: its attributes' classes less the eyes and brows
        its photo shows only through its eyeglasses (:func:`composite.behind_glasses`), which
        the identity keeps; all of them where the user painted the region."""
        classes = self._classes(spec.attributes)
        if spec.user_mask is not None or EYEGLASSES in classes:
            return classes
        return classes - composite_stage.behind_glasses(self._labels(fa), classes)

    def _hidden_lips(self, spec, fa) -> frozenset[int]:
        """The lips asked of a reference that its photo does not show (a moustache over them:
        :func:`composite.hidden_lips`); none where the user painted the region."""
        classes = self._classes(spec.attributes)
        if spec.user_mask is not None or not classes & {U_LIP, L_LIP}:
            return frozenset()
        return composite_stage.hidden_lips(to_float(fa.crop), self._labels(fa), classes)

    # -- rendering -------------------------------------------------------------------------
    def _render(self, asset, camera: Camera, resolution: int, job: _Job | None = None, span=(0.0, 1.0),
                semantics_only: bool = False):
        """Render with semantics; a tier without a semantic head gets them from the parser.
        ``semantics_only``: the caller reads the semantics alone (a tier that can, then skips
        work for the colour)."""
        prog = None
        if job is not None:
            a, b = span
            prog = lambda f: job.report(a + (b - a) * f)  # noqa: E731
        # the edit's renders are of tri-planes it sees once: no rasterised surface for them
        # (BundledTier.render's mesh_bounds), which is for views of one head from many angles
        once = {"mesh_bounds": False} if getattr(self.tier, "surface_bounds", False) else {}
        if semantics_only and getattr(self.tier, "semantics_only_render", False):
            once["semantics_only"] = True
        with torch.no_grad():
            out = self.tier.render(asset, camera, resolution, progress=prog, **once)
        if out.semantics is None:
            rgb = out.rgb[:, :3].float().clamp(0, 1)
            if rgb.shape[-1] != CROP:
                rgb = F.interpolate(rgb, size=(CROP, CROP), mode="bilinear", align_corners=False)
            labels = np.asarray(self.analyzer.parse(to_uint8(rgb[0].permute(1, 2, 0).cpu().numpy())))
            onehot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), NUM_CLASSES).permute(2, 0, 1)[None].float()
            out.semantics = F.interpolate(onehot, size=tuple(out.rgb.shape[-2:]), mode="area").to(out.rgb.device)
        return out

    def render_view(self, asset, yaw: float, pitch: float, resolution: int = 256, semantic: bool = True,
                    progress: Callable[[float], None] | None = None, transparent: bool = False):
        """RGB (and labels) of ``asset`` seen from the orbit camera at (yaw, pitch).
        -> (rgb uint8 (r, r, 3) or (r, r, 4) when transparent, labels uint8 (r, r) or None)"""
        # a tier may frame its orbit views itself and stand a backdrop behind them (bundled: issue 15)
        cam = getattr(self.tier, "orbit_camera", Camera.orbit)(yaw, pitch)
        extra = {"backdrop": not transparent} if hasattr(self.tier, "orbit_camera") else {}
        opts = None
        if transparent:
            opts = dataclasses.replace(self.tier.render_options, background=None)
        with torch.no_grad():
            out = self.tier.render(asset, cam, resolution, options=opts, progress=progress, **extra)
        rgb = out.rgb[0, :3].permute(1, 2, 0).float().clamp(0, 1).cpu().numpy()
        if transparent:
            a = out.opacity[0, 0].clamp(0, 1).cpu().numpy()
            rgb = np.concatenate([rgb / np.maximum(a, 1e-4)[..., None], a[..., None]], -1).clip(0, 1)
        labels = None
        if semantic and out.semantics is not None:
            # (the renderer's (19, H, W) is a view of (H, W, 19) memory; max().indices is argmax's
            # first-of-ties index and a little faster on it)
            labels = out.semantics[0].max(0).indices.to(torch.uint8).cpu().numpy()
        return to_uint8(rgb), labels

    def can_preview(self, asset) -> bool:
        """Whether :meth:`preview_view` rasterises (a tier with a surface preview, e.g. the
        bundled tier's height field) rather than falling back to a volume render."""
        from triface_studio.core import raster

        return raster.AVAILABLE and hasattr(self.tier, "preview") and getattr(asset, "tier", "") == self.tier.name

    def preview_view(self, asset, yaw: float, pitch: float, resolution: int = 512, semantic: bool = True,
                     fallback_resolution: int = 128):
        """The orbit view while the user drags: the tier's rasterised surface at ``resolution``
        (milliseconds), or, for a tier without one, a volume render at ``fallback_resolution``.
        -> as :meth:`render_view`"""
        if not self.can_preview(asset):
            return self.render_view(asset, yaw, pitch, min(resolution, fallback_resolution), semantic=semantic)
        cam = self.tier.orbit_camera(yaw, pitch)
        rgb, labels = self.tier.preview(asset, cam, resolution, semantic=semantic)
        return to_uint8(rgb), labels

    # -- the edit ------------------------------------------------------------------------------
    def run(self, request: EditRequest, progress: ProgressFn | None = None,
            cancel: threading.Event | None = None) -> EditResult:
        """Run one edit. Raises EditError (bad input, with a user-facing message) or Cancelled."""
        job = _Job(progress, cancel)
        notes: list[str] = []
        validate_request(request)           # the one check of every setting (CLI, edit.json, app)
        for ref in request.references:
            self._classes(ref.attributes)
        settings = request.refine
        refiner = make_refiner(settings, self.device)
        torch.manual_seed(int(request.seed))

        with job("analyze"):
            id_img, id_name = self.load(request.identity, request.identity_name, "identity")
            fa_id = self.analyze(id_img, id_name, "identity", face_index=request.identity_face_index)
            refs = []
            for i, spec in enumerate(request.references):
                img, nm = self.load(spec.image, spec.name, f"reference {i + 1}")
                refs.append((spec, self.analyze(img, nm, "reference"), img))
                job.report((i + 1) / (len(request.references) + 1))
            notes.extend(getattr(fa_id, "notes", []) or [])
            for _, fa, _ in refs:
                notes.extend(getattr(fa, "notes", []) or [])
            labels_id = self._labels(fa_id)

        with job("encode"):
            t_id, *t_refs = self.encode_all([fa_id] + [fa for _, fa, _ in refs], job.report)

        R = t_id.planes.shape[-1]
        frontal = Camera.frontal()
        rr = int(request.render_resolution)
        cam_id = getattr(fa_id, "camera", None) or frontal
        align_res = 96          # frontal semantics only feed plane masks; 96 px is plenty
        all_classes: set[int] = set()
        steps, borders, ends, kept, cuts = [], [], [], [], []
        taken = []          # per reference: (classes taken from it, its hidden lips), found once
        with job("align"):
            # identity's frontal semantics (its M_-k is taken per reference below)
            sem_id = self._render(t_id, frontal, align_res, job, (0.0, 0.3), semantics_only=True).semantics
            for i, ((spec, fa, _img), t_ref) in enumerate(zip(refs, t_refs)):
                classes = self._given(spec, fa)
                ref_name = getattr(fa, "name", f"reference {i + 1}")
                behind = self._classes(spec.attributes) - classes
                if behind:
                    what = " and ".join(sorted({"eyes" if c in (L_EYE, R_EYE) else "brows" for c in behind}))
                    if not classes:
                        raise EditError(f"the {what} of {ref_name} show only through its eyeglasses; pick a "
                                        f"reference without glasses, or paint the region with a mask")
                    notes.append(f"the {what} of {ref_name} show only through its eyeglasses: the identity "
                                 f"keeps its own")
                all_classes |= classes
                hidden = self._hidden_lips(spec, fa)
                taken.append((classes, hidden))
                if hidden:
                    what = " and ".join({U_LIP: "upper lip", L_LIP: "lower lip"}[c] for c in sorted(hidden))
                    notes.append(f"the {what} of {ref_name} {'are' if len(hidden) > 1 else 'is'} hidden (by a "
                                 f"moustache, a beard or a shadow): the identity keeps its own mouth, its lips "
                                 f"in the colour of the lips {ref_name} shows")
                ref_labels = self._labels(fa)
                present = int(masks.class_mask(ref_labels, classes).sum())
                has_user = spec.user_mask is not None and spec.mask_mode in ("replace", "add")
                if present < MIN_ATTRIBUTE_PIXELS and not has_user:
                    what = ", ".join(spec.attributes)
                    raise EditError(f"reference {ref_name} shows no {what} (found {present} pixels of it); "
                                    f"pick another reference or paint the region with a mask in add or replace mode")
                if HAIR in classes and hair_sharpness(fa.crop, ref_labels) < SOFT_HAIR:
                    notes.append(f"the hair of {ref_name} is out of focus in its photo: the new hair will be "
                                 f"as soft (a sharper photo of the same hairstyle gives a better result)")
                sem_ref = self._render(t_ref, frontal, align_res, job,
                                       (0.3 + 0.7 * i / len(refs), 0.3 + 0.7 * (i + 1) / len(refs)),
                                       semantics_only=True).semantics
                mk_front = _soft_region(sem_ref, classes)
                plane_mk = blending.plane_mask(mk_front, R, frontal)
                if HAIR in classes:
                    # hair the reference has over its own eyes, nose or mouth does not cover the
                    # identity's (the user can still paint it in)
                    face = composite_stage.inner_face(labels_id).astype(np.float32)
                    plane_mk = plane_mk * (1 - blending.plane_mask(torch.from_numpy(face), R, cam_id))
                if spec.user_mask is not None:
                    um = crop_mask(spec.user_mask, f"the mask for {ref_name}", notes)
                    if spec.mask_mode == "subtract" and int(
                            (masks.class_mask(ref_labels, classes) * torch.from_numpy(um < 0.5)).sum()) < MIN_ATTRIBUTE_PIXELS:
                        raise EditError(f"the region to take from {ref_name} is empty "
                                        f"(the subtracted mask covers all of it)")
                    ref_cam = getattr(fa, "camera", None) or frontal
                    plane_user = blending.plane_mask(torch.from_numpy(um), R, ref_cam)
                    plane_mk = masks.combine_user_mask(plane_mk, plane_user, spec.mask_mode)
                # the identity's region k, grown by a pixel: its anti-aliased rim would otherwise
                # stay behind as a thin line of the old colour (old hair around the new)
                m_not = 1 - masks.dilate((_soft_region(sem_id, classes) > 0.5).float(), 1)
                plane_not = blending.plane_mask(m_not, R, frontal)
                if spec.user_mask is not None and spec.mask_mode == "subtract":
                    # what the user subtracts is kept from the identity, not removed from it; of
                    # hair, all the identity's own hair that the part taken does not cover stays:
                    # the part is laid over it (removed, the old hair beside the kept part was a
                    # gap that had to be invented: a blotch of strands across the forehead)
                    cover = blending.plane_mask(torch.ones_like(torch.from_numpy(um)), R, ref_cam)
                    if HAIR in classes:
                        cuts.append((plane_user, cover, um, len(steps)))     # where its new hair is cut off
                        um = np.ones_like(um)
                        plane_user = torch.ones_like(plane_user)
                    plane_not = torch.maximum(plane_not, plane_user)
                    kept.append((plane_user, cover, um))
                if float(plane_mk.max()) < 0.5:
                    raise EditError(f"the region to take from {ref_name} is empty "
                                    f"(the mask removed all of it)")
                steps.append((t_ref.planes.to(t_id.planes), plane_mk.to(t_id.planes), plane_not.to(t_id.planes)))
                if HAIR in classes:
                    # where the reference's hair runs into its crop's edge it is cut straight:
                    # that part fades out on the result instead of showing the cut
                    ref_cam = getattr(fa, "camera", None) or frontal
                    borders.append(blending.plane_mask(torch.from_numpy(edge_of_view(fa)), R, ref_cam) * plane_mk)
                    # and where it runs into its crop's top or bottom: continued to the identity's
                    # frame there when that is near
                    ends.append(blending.plane_mask(torch.from_numpy(frame_border()), R, ref_cam) * plane_mk)

        # a reference's cut fades its own hair only, not the hair another reference gives there
        cuts = [(plane_user * (1 - torch.stack([m.cpu() for j, (_, m, _) in enumerate(steps) if j != k]).amax(0))
                 if len(steps) > 1 else plane_user, cover, um) for plane_user, cover, um, k in cuts]

        with job("blend"):
            planes = blending.blend_sequence(t_id.planes, steps)
            t_blend = t_id.replace(planes, edit="blend")

        with job("render"):
            out = self._render(t_blend, cam_id, rr, job)
            rgb = out.rgb[:, :3].float().clamp(0, 1)
            sem = out.semantics.float()
            if rr != CROP:
                rgb = F.interpolate(rgb, size=(CROP, CROP), mode="bilinear", align_corners=False)
                sem = F.interpolate(sem, size=(CROP, CROP), mode="bilinear", align_corners=False)
            i_ref_hat = rgb[0].permute(1, 2, 0).cpu().numpy()
            # plane masks read where each pixel's ray meets the rendered surface
            hit = torch.where(out.opacity[0, 0] > 0.5, out.depth[0, 0], torch.full_like(out.depth[0, 0], float("nan")))
            surface = F.interpolate(hit[None, None].float().cpu(), size=(CROP, CROP), mode="nearest")[0, 0]
            from_ref = plane_to_image(torch.stack([m for _, m, _ in steps]).amax(0).cpu(), cam_id, CROP,
                                      surface=surface)
            ref_border = plane_to_image(torch.stack(borders).amax(0).cpu(), cam_id, CROP,
                                        surface=surface).numpy() if borders else None
            ref_end = plane_to_image(torch.stack(ends).amax(0).cpu(), cam_id, CROP,
                                     surface=surface).numpy() if ends else None
            i_ref_hat, beyond, stretched = self._photo_texels(i_ref_hat, out, hit, cam_id, refs, steps,
                                                              [c for c, _ in taken])
            kept_img = self._kept(kept, cam_id, surface) if kept else None
            cut_img = self._kept(cuts, cam_id, surface) if cuts else None
            s_blend_probs = sem[0].cpu()
            s_blend = s_blend_probs.max(0).indices.to(torch.uint8).numpy()
            # new hair that shows its reference's own background is background: the hair's outline
            # is the photo's, not the tri-plane's coarser one
            s_blend[beyond & (s_blend == HAIR)] = BACKGROUND
            from_ref = from_ref.numpy()
            for (spec, fa, _img), (given, hidden) in zip(refs, taken):
                for part in self._moved_parts(spec, fa, fa_id, given, hidden):
                    s_blend, i_ref_hat, from_ref = put_part(s_blend, i_ref_hat, from_ref, labels_id, *part)

        with job("composite"):
            layers = [composite_stage.ReferenceLayer(
                crop=to_float(fa.crop), labels=self._labels(fa), classes=taken[i][0],
                name=getattr(fa, "name", f"reference {i + 1}"),
                **self._glasses_render(spec, fa, t_ref, cam_id, rr, notes, fa_id))
                for i, ((spec, fa, _img), t_ref) in enumerate(zip(refs, t_refs))]
            i_id = to_float(fa_id.crop)
            bg_id = (labels_id == BACKGROUND).astype(np.float32)
            comp = composite_stage.build(
                i_id, labels_id, i_ref_hat, s_blend, sorted(all_classes), from_ref, layers,
                lambda holes: self._background(request, i_id, bg_id, holes, refs, notes), settings,
                background=request.background, ref_border=ref_border, ref_end=ref_end, kept=kept_img, cut=cut_img,
                stretched=stretched,
                bare=None if request.bare_mask is None else crop_mask(request.bare_mask, "the bare-scalp mask", notes))
            notes.extend(comp.notes)
            s_blend = comp.s_blend

        with job("refine"):
            coarse = comp.coarse
            kwargs = {"seams": comp.seams} if isinstance(refiner, ClassicalRefiner) else {}
            refined = refiner.refine(coarse, comp.m_sde, seed=int(request.seed), progress=job.report, **kwargs)
            refined = compositing.refine_blend(torch.from_numpy(np.asarray(refined, np.float32)),
                                               torch.from_numpy(coarse), torch.from_numpy(comp.m_sde)).numpy()

        with job("final"):
            i_com = compositing.final_composite(torch.from_numpy(refined), torch.from_numpy(comp.m_bg),
                                                torch.from_numpy(comp.i_bg)).numpy()
            change = np.maximum(np.maximum(comp.m_sde, comp.changed_bg), comp.alpha)
            protect = self._protect_mask(request.identity_mask, notes)
            if protect is not None:
                i_com = i_com * (1 - protect[..., None]) + i_id * protect[..., None]
                change = change * (1 - protect)
            composite = to_uint8(i_com)
            alpha = None
            if request.background == "transparent":
                alpha = (1 - comp.m_bg).astype(np.float32)
            try:
                full = fa_id.paste_back(composite, id_img, change.astype(np.float32))
            except TypeError:
                full = fa_id.paste_back(composite, id_img)

        with job("reencode"):
            fa_com = _with(fa_id, crop=composite, labels=None)
            try:
                parsed = self.analyzer.parse(composite)
            except Exception:  # noqa: BLE001 - a parser failure must not lose the edit
                parsed = None
            if parsed is None:
                parsed = s_blend
                notes.append("the composite could not be re-parsed; its rendered semantics were used")
            else:
                notes.extend(unseen_glasses(np.asarray(parsed), comp.s_blend, all_classes,
                                            [getattr(fa, "name", "the reference") for spec, fa, _ in refs
                                             if EYEGLASSES in self._classes(spec.attributes)]))
            fa_com = _with(fa_com, labels=without_debris(np.asarray(parsed)))
            with torch.no_grad():
                t_com = self.tier.encode(fa_com)

        return EditResult(
            t_blend=t_blend, t_com=t_com, s_blend=s_blend, coarse=coarse.astype(np.float32),
            refined=refined.astype(np.float32), composite=composite, composite_full=np.asarray(full),
            gap_mask=comp.gap.astype(np.float32), sde_mask=comp.m_sde.astype(np.float32),
            edit_region=comp.region.astype(np.float32), timings=dict(job.timings), notes=notes,
            identity=fa_id, references=[fa for _, fa, _ in refs], request=request, alpha=alpha,
            s_blend_probs=None,
        )

    @staticmethod
    def _kept(kept, cam_id, surface) -> np.ndarray:
        """Where subtract masks keep the identity's own region (or, given the hair's ``cuts``,
        where they cut the reference's hair off), on its crop: each mask read
        through the XY plane (it was painted on its reference, whose pose may differ), and
        where the plane holds nothing of the reference's crop (the crown at the top edge) the
        mask as painted, the crops being aligned alike. -> (CROP, CROP)"""
        out = np.zeros((CROP, CROP), np.float32)
        for plane_user, cover, painted in kept:
            read = plane_to_image(plane_user.cpu(), cam_id, CROP, surface=surface).numpy()
            inside = plane_to_image(cover.cpu(), cam_id, CROP, surface=surface).numpy() > 0.99
            out = np.maximum(out, np.where(inside, read, np.asarray(painted, np.float32)))
        return out

    def _photo_texels(self, render: np.ndarray, out, hit, cam_id, refs, steps,
                      taken: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The render of T^blend with every pixel that shows a reference's attribute taken from
        that reference's own crop instead: the pixel's surface point (rendered depth) projected
        into the reference's camera (:func:`core.rays.source_pixels`) is where the tri-plane's
        texel was read from, so this is the same colour at the photo's sharpness instead of
        the tri-plane's (a 256 px render of 256 px planes blurs strands).  Pixels whose point
        falls on something else in the reference keep the render; hair pixels on a hair
        reference's background are returned as ``beyond`` (the hair's outline is the photo's
        there).  ``hit``: the render's ray distances, NaN where nothing was hit.  Each pixel is
        given to the reference whose texel the blend kept there: later steps of
        :func:`core.blending.blend_sequence` overwrite earlier ones.  ``stretched``: the
        reference's pixels that cover less than ``MIN_PHOTO_AREA`` of its photo each (a side
        its photo saw at a grazing angle: one texel smeared into a streak).  ``taken``: the
        classes taken from each reference (:meth:`_given`).
        Shape: (CROP, CROP, 3) -> (CROP, CROP, 3), beyond and stretched (CROP, CROP) bool"""
        d = out.depth[0, 0].float().cpu()
        rr = d.shape[-1]
        at = hit.float().cpu()
        masks_rr = [plane_to_image(plane_mk.cpu(), cam_id, rr, surface=at) for _, plane_mk, _ in steps]
        shares, rest = [], torch.ones_like(masks_rr[0])
        for m in reversed(masks_rr):              # step i's share: mk_i times what no later step took
            shares.append(m * rest)
            rest = rest * (1 - m)
        strong, pick = torch.stack(shares[::-1]).max(0)
        up = lambda t: F.interpolate(t[None, None].float(), size=(CROP, CROP), mode="nearest")[0, 0]  # noqa: E731
        strong, pick = up(strong).numpy() > 0.5, up(pick.float()).numpy().round().astype(int)
        seen = up(torch.isfinite(at).float()).numpy() > 0.5
        result = np.asarray(render, np.float32).copy()
        beyond = np.zeros((CROP, CROP), bool)
        stretched = np.zeros((CROP, CROP), bool)
        for i, (spec, fa, _img) in enumerate(refs):
            sel = strong & (pick == i) & seen
            if not sel.any():
                continue
            ref_cam = getattr(fa, "camera", None) or Camera.frontal()
            uv = source_pixels(d, cam_id, ref_cam, CROP).permute(2, 0, 1)[None]
            uv = F.interpolate(uv, size=(CROP, CROP), mode="bilinear", align_corners=False)[0].numpy() - 0.5
            mx, my = np.ascontiguousarray(uv[0]), np.ascontiguousarray(uv[1])
            # how much of the reference's photo each pixel covers: a surface its photo saw at a
            # grazing angle is stretched across many pixels here (streaks of one texel)
            area = np.abs(np.gradient(mx, axis=1) * np.gradient(my, axis=0)
                          - np.gradient(mx, axis=0) * np.gradient(my, axis=1))
            stretched |= sel & (area < MIN_PHOTO_AREA)
            labels = cv2.remap(self._labels(fa).astype(np.uint8), mx, my, cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=255)
            classes = taken[i]
            own = np.isin(labels, list(classes))
            # whole patches only: a pixel here and there on the background is the reference's
            # own edge (strand tips), not a region to remove
            if HAIR in classes:
                beyond |= masks.large_pieces(sel & (labels == BACKGROUND), 40)
            # the photo where the attribute is all around, fading into the render at its edges
            sure = cv2.erode((sel & own).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
            w = (cv2.GaussianBlur(sure, (0, 0), 1.5) * (sel & own))[..., None]
            photo = cv2.remap(to_float(fa.crop), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            result = result * (1 - w) + photo * w
        return result.astype(np.float32), beyond, stretched

    def _glasses_render(self, spec, fa, t_ref, cam_id, rr, notes, fa_id=None) -> dict:
        """For a reference that gives eyeglasses: the reference's crop seen from the identity
        (the glasses layer is separated from the face behind its lenses there), with its labels
        and the user's painted region; {} otherwise.  Glasses are rigid and sit on the eyes: the
        reference's own pixels moved by the similarity that takes its eyes and nose bridge onto
        the identity's keep the frames sharp (a render of the tri-plane blurs thin frames); the
        render of T^ref at the identity's camera is the fallback without landmarks."""
        if EYEGLASSES not in self._classes(spec.attributes):
            return {}
        user = None
        if spec.user_mask is not None and spec.mask_mode in ("add", "replace"):
            user = crop_mask(spec.user_mask, "the reference's mask", [])
        warp = eye_similarity(fa, fa_id) if fa_id is not None else None
        if warp is not None:
            crop, labels = to_float(fa.crop), self._labels(fa).astype(np.uint8)
            # a reference seen from the side brings lopsided glasses; onto a frontal face its
            # near half is mirrored (glasses are symmetric); a frontal reference's pair is
            # foreshortened half by half to the identity's turn
            name = getattr(fa, "name", "the reference")
            near = halves = None
            route = glasses_route(_yaw(fa), _yaw(fa_id))
            if route == "turned in 3D":
                near = nearer_half(fa, fa_id, warp)
                if near is not None:
                    return self._turned_glasses(t_ref, cam_id, rr, user, near, fa, fa_id, name, notes)
                route = "side"
            if route == "side":
                notes.append(f"{name} is turned {abs(_yaw(fa)):.0f} degrees: its eyeglasses are seen so much from "
                             f"the side that they may look lopsided; a more frontal reference gives a better pair")
            elif route == "mirrored":
                near = nearer_half(fa, fa_id, warp)
            elif route == "halves":
                # (only a reference seen from the front: stretching the far half of a turned
                # one's pair enlarges what its turn hid or bent)
                halves = half_affines(fa, fa_id, warp)
            if halves is not None:
                render, labels = warp_halves(crop, *halves), warp_halves(labels, *halves, flags=cv2.INTER_NEAREST)
                user = None if user is None else warp_halves(user, *halves)
            else:
                render, labels = warp_crop(crop, warp), warp_crop(labels, warp, cv2.INTER_NEAREST)
                user = None if user is None else warp_crop(user, warp)
            if near is not None:
                mid = float(np.asarray(fa_id.crop_landmarks)[MIDLINE_POINT, 0])
                render, labels, user = composite_stage.symmetric_glasses(render, labels, mid, near, user)
                notes.append(f"the eyeglasses of {name} were seen from the side; their nearer half, mirrored, "
                             f"makes the pair")
            return {"render": render, "render_labels": labels, "user_region": user, "warped": True}
        return self._rendered_glasses(t_ref, cam_id, rr, user)

    def _rendered_glasses(self, t_ref, cam_id, rr, user) -> dict:
        """T^ref rendered at the identity's camera, with its labels: the glasses turned to the
        identity's pose in 3D (the paper's own path)."""
        out = self._render(t_ref, cam_id, rr)
        rgb = out.rgb[:, :3].float().clamp(0, 1)
        sem = out.semantics.float()
        if rr != CROP:
            rgb = F.interpolate(rgb, size=(CROP, CROP), mode="bilinear", align_corners=False)
            sem = F.interpolate(sem, size=(CROP, CROP), mode="bilinear", align_corners=False)
        return {"render": rgb[0].permute(1, 2, 0).cpu().numpy(),
                "render_labels": sem[0].max(0).indices.to(torch.uint8).cpu().numpy(), "user_region": user}

    def _turned_glasses(self, t_ref, cam_id, rr, user, near, fa, fa_id, name, notes) -> dict:
        """A reference seen far from the side (past SIDE_YAW) onto a frontal identity: its own
        pixels, moved by the eyes' similarity, put a lopsided pair over the nose and cheek (the
        far lens a dark smear), so its tri-plane turns the glasses to the front and their nearer
        half (``near``), seen well in its photo, is mirrored onto the far one, which it did not
        see (training eyeglasses pairs 17 and 32, turned 35 and 42 degrees)."""
        got = self._rendered_glasses(t_ref, cam_id, rr, user)
        mid = float(np.asarray(fa_id.crop_landmarks)[MIDLINE_POINT, 0])
        got["render"], got["render_labels"], _ = composite_stage.symmetric_glasses(
            got["render"], got["render_labels"], mid, near)
        notes.append(f"{name} is turned {abs(_yaw(fa)):.0f} degrees: its eyeglasses were turned to the front in 3D "
                     f"and their nearer half, mirrored, makes the pair; a more frontal reference gives a sharper pair")
        return got

    def _moved_parts(self, spec, fa, fa_id, given=None, hidden=None) -> list[tuple]:
        """For a reference that gives lips, eyes or brows, without a painted mask: for each such
        part (the mouth; each eye and each brow on its own), the reference's crop and labels
        moved by the similarity that takes the part's face-mesh points onto the identity's, the
        part's classes, and the side of the identity's face it is on (None for the mouth).
        ``given``, ``hidden``: :meth:`_given` and :meth:`_hidden_lips` of the reference, when
        already found.  -> [(crop, labels, classes, side), ...]"""
        given = self._given(spec, fa) if given is None else given
        if spec.user_mask is not None or not given & PART_CLASSES:
            return []
        lm = getattr(fa_id, "crop_landmarks", None)
        if lm is None or len(lm) <= max(MIDLINE_POINT, *(max(p) for _, p, _ in MOVED_PARTS)):
            return []
        mid = float(np.asarray(lm)[MIDLINE_POINT, 0])
        crop, labels = to_float(fa.crop), self._labels(fa).astype(np.uint8)
        out = []
        for classes, points, side in MOVED_PARTS:
            if not given & classes:
                continue
            if side is None:
                hidden = self._hidden_lips(spec, fa) if hidden is None else hidden
                if self._recolour_mouth(spec, fa, fa_id, hidden):
                    out.append(self._recoloured_mouth(spec, fa, fa_id, hidden))
                    continue
            warp = landmark_similarity(fa, fa_id, points)
            if warp is None:
                continue
            out.append((warp_crop(crop, warp), warp_crop(labels, warp, cv2.INTER_NEAREST),
                        given & classes, None if side is None else (side, mid)))
        return out

    def _recolour_mouth(self, spec, fa, fa_id, hidden=None) -> bool:
        """Whether the reference's mouth can not be moved onto the identity's: a lip of it is
        hidden (:meth:`_hidden_lips`), or the identity's mouth is open and the reference's shut
        (its opening, as a share of the mouth's width, is :data:`MOUTH_OPENING_DIFF` wider): a
        shut mouth moved onto an open smile left a band of skin where the teeth were, a lip
        under a moustache came along as a moustache.  (An open mouth moved onto a shut one
        covers it whole.)  ``hidden``: :meth:`_hidden_lips`, when already found."""
        hidden = self._hidden_lips(spec, fa) if hidden is None else hidden
        return bool(hidden) or mouth_opening(fa_id) - mouth_opening(fa) > MOUTH_OPENING_DIFF

    def _recoloured_mouth(self, spec, fa, fa_id, hidden=None) -> tuple:
        """The identity's own mouth (its lips' shape, its teeth) with its lips in the colour
        of the reference's visible lips (Reinhard transfer in CIELAB, its spread at most the
        identity's own; the composite then moves them from the reference's light to the
        identity's), as a moved part for :func:`put_part`."""
        crop_id, labels_id = to_float(fa_id.crop), self._labels(fa_id).astype(np.uint8)
        wanted = self._classes(spec.attributes)
        shown = (wanted & {U_LIP, L_LIP}) - (self._hidden_lips(spec, fa) if hidden is None else hidden)
        target = colour.stats(to_float(fa.crop), np.isin(self._labels(fa), sorted(shown)).astype(np.float32))
        lips_id = np.isin(labels_id, sorted(wanted & {U_LIP, L_LIP})).astype(np.float32)
        own = colour.stats(crop_id, lips_id)
        if target is None or own is None:
            return crop_id, labels_id, wanted & MOVED_PARTS[0][0], None
        # no more contrast than the identity's own lips have: a spread widened to the reference's
        # (its lips' highlights) turned the shadow between lip and teeth into a black line
        crop = colour.transfer(crop_id, lips_id, (target[0], np.minimum(target[1], own[1])), 1.0)
        return crop, labels_id, wanted & MOVED_PARTS[0][0], None

    @staticmethod
    def _protect_mask(mask, notes: list) -> np.ndarray | None:
        """The identity's protect mask on the crop, feathered by a pixel so its edge does not
        show; None when there is none or it is empty."""
        if mask is None or not np.asarray(mask).any():
            return None
        m = crop_mask(mask, "the identity's mask", notes)
        return np.clip(cv2.GaussianBlur(m, (0, 0), 1.0), 0, 1).astype(np.float32)

    def _background(self, request, i_id, bg_id, holes, refs, notes) -> np.ndarray:
        """Eq. 14's I^bg: the identity's (or the first reference's) background with the head
        filled with the background's own texture where ``holes`` need it, a flat colour, or
        black for a transparent result."""
        bg = request.background
        if isinstance(bg, str):
            if bg == "identity":
                return composite_stage.background_plate(i_id, bg_id, holes)
            if bg == "reference":
                _, fa, _ = refs[0]
                lab = self._labels(fa)
                img = to_float(fa.crop)
                return composite_stage.background_plate(img, (lab == BACKGROUND).astype(np.float32),
                                                        lab != BACKGROUND)
            if bg == "transparent":
                return np.zeros_like(i_id)
            raise EditError(f"background must be identity, reference, transparent or a colour, not {bg!r}")
        c = np.asarray(bg, dtype=np.float32).reshape(-1)
        if c.size != 3:
            raise EditError(f"a background colour needs 3 numbers, got {list(c)}")
        if c.max() > 1.0:
            c = c / 255.0
        return np.broadcast_to(np.clip(c, 0, 1), i_id.shape).copy()


#: face-mesh points that glasses rest on: eye corners, nose bridge, the face's sides at eye level
GLASSES_POINTS = (33, 133, 263, 362, 168, 6, 127, 356)
#: per half of the face: its outer eye corner and temple (how far the half reaches from the
#: midline), and the bounds of the horizontal scale that fits a half to the identity's turn
GLASSES_HALVES, HALF_SCALE = ((33, 127), (263, 356)), (0.5, 1.6)
#: a turned reference whose one half reaches this many times further from the midline than the
#: other, on the identity's crop, has its glasses made from the nearer half (:func:`nearer_half`)
GLASSES_LOPSIDED = 1.1
#: face parts pasted as the reference's own pixels moved by their landmarks (:func:`put_part`):
#: (classes, face-mesh points, side of the image they lie on).  The mouth: its corners (outer and
#: inner), the lip lines' middles and the lips' outline half way to the corners; each eye: its
#: lid contour; each brow: its upper and lower edge
MOVED_PARTS = (
    (frozenset({MOUTH, U_LIP, L_LIP}), (61, 291, 78, 308, 0, 17, 13, 14, 37, 267, 84, 314), None),
    (frozenset({L_EYE, R_EYE}), (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246), "left"),
    (frozenset({L_EYE, R_EYE}), (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
     "right"),
    (frozenset({L_BROW, R_BROW}), (46, 53, 52, 65, 55, 70, 63, 105, 66, 107), "left"),
    (frozenset({L_BROW, R_BROW}), (276, 283, 282, 295, 285, 300, 293, 334, 296, 336), "right"),
)
PART_CLASSES = frozenset().union(*(c for c, _, _ in MOVED_PARTS))
#: the face-mesh point on the nose bridge: the face's midline, which keeps each eye to its half
MIDLINE_POINT = 168
#: (degrees) an identity this near frontal takes a side-seen reference's glasses made symmetric,
#: from a reference turned at least TURNED_YAW (and lopsided: see :func:`nearer_half`; on the
#: training photos one at 13 degrees had a torn far rim).  Up to SIDE_YAW its own pixels are
#: mirrored; beyond it (one at 42 degrees gave one lens over the nose, one at 34 a good pair) its
#: tri-plane's render is (:func:`glasses_route`)
FRONTAL_YAW, TURNED_YAW, SIDE_YAW = 12.0, 8.0, 35.0

#: a moved part of fewer pixels than this (the reference's eye shut, its mouth hidden) is not put
MIN_PART_PIXELS = 24


#: a reference's mouth this much less open (inner lip gap over mouth width) than the identity's is
#: not moved onto it: the identity keeps its own mouth, its lips recoloured
MOUTH_OPENING_DIFF = 0.12
#: face-mesh points: the inner lips' middles and the inner mouth corners
MOUTH_GAP_POINTS, MOUTH_CORNER_POINTS = (13, 14), (78, 308)


#: a piece of the edited head apart from the rest, smaller than this share of the largest, is the
#: edit's debris (a fragment of old hair or of a reference's crop edge): the re-encode takes it for
#: background, so views do not show it floating beside the head (T^com of training hair pairs 2,
#: 3, 6, 9, 12 and 15 had pieces of 100-850 texels apart from the head)
DEBRIS_SHARE = 0.01


def without_debris(labels: np.ndarray, share: float = DEBRIS_SHARE) -> np.ndarray:
    """The composite's labels with the small pieces of the person apart from the rest labelled
    background (see :data:`DEBRIS_SHARE`). Shape: (H, W) uint8 -> (H, W) uint8"""
    debris = masks.small_pieces(labels != BACKGROUND, share)
    if not debris.any():
        return labels
    out = labels.copy()
    out[debris] = BACKGROUND
    return out


def _yaw(fa) -> float:
    """The photo's head yaw (degrees) from its face analysis; 0 when it has none."""
    pose = getattr(fa, "pose", None)
    return float(pose[0]) if pose is not None else 0.0


def mouth_opening(fa) -> float:
    """How far a face's mouth is open: the gap between the inner lips' middles over the width
    between the inner corners (0 shut, ~0.3 a wide smile); 0 without landmarks."""
    lm = getattr(fa, "crop_landmarks", None)
    if lm is None or len(lm) <= max(MOUTH_GAP_POINTS + MOUTH_CORNER_POINTS):
        return 0.0
    p = np.asarray(lm, np.float32)[:, :2]
    gap = float(np.linalg.norm(p[MOUTH_GAP_POINTS[0]] - p[MOUTH_GAP_POINTS[1]]))
    width = float(np.linalg.norm(p[MOUTH_CORNER_POINTS[0]] - p[MOUTH_CORNER_POINTS[1]]))
    return gap / max(width, 1.0)


def hair_sharpness(crop: np.ndarray, labels) -> float:
    """How sharp a photo's hair is: the median fine detail of its lightness (minus a 1.5 px
    blur) inside the hair, relative to the hair's lightness + 20 (dark hair has less detail to
    show); inf when there is too little hair to tell.  Sharp blonde hair scores ~0.02, a
    blurred photo ~0.002.  Shape: (512, 512, 3) uint8, (512, 512) labels -> float"""
    hair = cv2.erode((np.asarray(labels) == HAIR).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    if hair.sum() < 500:
        return float("inf")
    L = cv2.cvtColor(np.ascontiguousarray(crop, np.uint8), cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    detail = np.abs(L - cv2.GaussianBlur(L, (0, 0), 1.5))
    return float(np.median(detail[hair]) / (np.median(L[hair]) + 20.0))


def eye_similarity(fa_ref, fa_id) -> np.ndarray | None:
    """The 2x3 similarity (rotation, scale, shift) that takes the reference crop's eyes, nose
    bridge and temples onto the identity's, or None without landmarks."""
    return landmark_similarity(fa_ref, fa_id, GLASSES_POINTS)


def _moved_landmarks(fa_ref, fa_id, similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The reference's face-mesh points moved onto the identity's crop by ``similarity``, the
    identity's points and its midline column; None without the points the glasses' halves need."""
    a, b = getattr(fa_ref, "crop_landmarks", None), getattr(fa_id, "crop_landmarks", None)
    need = max(*GLASSES_HALVES[0], *GLASSES_HALVES[1], MIDLINE_POINT)
    if a is None or b is None or len(a) <= need or len(b) <= need:
        return None
    a, b = np.asarray(a, np.float64)[:, :2], np.asarray(b, np.float64)[:, :2]
    m = np.asarray(similarity, np.float64)
    return a @ m[:, :2].T + m[:, 2], b, float(b[MIDLINE_POINT, 0])


def glasses_route(ref_yaw: float, id_yaw: float) -> str:
    """How a reference's eyeglasses are moved onto the identity, from the two faces' yaws
    (degrees): "halves" (a frontal reference's pair foreshortened half by half to the identity's
    turn), "mirrored" (a turned reference onto a frontal identity: its nearer half mirrored),
    "turned in 3D" (a reference seen far from the side onto a frontal identity: its tri-plane's
    render, nearer half mirrored), "side" (far from the side onto a turned identity: moved as it
    is, with a note) or "moved" (a turned reference onto a turned identity)."""
    ref, ident = abs(float(ref_yaw)), abs(float(id_yaw))
    if ref > SIDE_YAW:
        return "turned in 3D" if ident < FRONTAL_YAW else "side"
    if ref >= TURNED_YAW:
        return "mirrored" if ident < FRONTAL_YAW else "moved"
    return "halves"


def nearer_half(fa_ref, fa_id, similarity: np.ndarray, lopsided: float = GLASSES_LOPSIDED) -> str | None:
    """Which half of a turned reference's face, moved onto the identity's crop by the eyes'
    ``similarity``, the reference turns towards the camera: "left" or "right" of the identity's
    midline, the one whose outer eye corner and temple reach ``lopsided`` times further from it
    than the other's (the face's own landmarks, which a dark blob beside the far lens does not
    move); None when the halves are alike or without landmarks."""
    got = _moved_landmarks(fa_ref, fa_id, similarity)
    if got is None:
        return None
    moved, _, mid = got
    reach = [float(np.abs(moved[list(p), 0] - mid).mean()) for p in GLASSES_HALVES]
    side = ["left" if float(moved[p[0], 0]) < mid else "right" for p in GLASSES_HALVES]
    if min(reach) <= 0 or max(reach) < lopsided * min(reach) or side[0] == side[1]:
        return None
    return side[int(np.argmax(reach))]


def half_affines(fa_ref, fa_id, similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """For each half of the identity's face (left and right of its midline, column ``mid``):
    the eyes' ``similarity`` followed by a horizontal scale about the midline that takes the
    reference's outer eye corner and temple on that side to the identity's distance from the
    midline (0.5-1.6x).  One similarity for the whole pair cannot foreshorten; this makes the
    far lens of glasses from a frontal reference narrower on a turned face and keeps its near
    arm off the cheek.  -> (left, right 2x3 maps, mid) or None without landmarks"""
    got = _moved_landmarks(fa_ref, fa_id, similarity)
    if got is None:
        return None
    moved, b, mid = got
    maps = []
    for points in GLASSES_HALVES:
        reach_id = np.abs(b[list(points), 0] - mid).mean()
        reach_ref = np.abs(moved[list(points), 0] - mid).mean()
        k = float(np.clip(reach_id / max(reach_ref, 1.0), *HALF_SCALE))
        scale = np.array([[k, 0.0, mid * (1 - k)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        maps.append((float(b[points[0], 0]), (scale @ np.vstack([similarity, [0.0, 0.0, 1.0]]))[:2]))
    (xa, ma), (xb, mb) = maps
    return (ma, mb, mid) if xa < xb else (mb, ma, mid)


def warp_halves(image: np.ndarray, left: np.ndarray, right: np.ndarray, mid: float,
                flags: int = cv2.INTER_LINEAR, band: float = 6.0) -> np.ndarray:
    """:func:`warp_crop` by ``left`` left of column ``mid`` and by ``right`` right of it, the two
    cross-faded over ``band`` px at the midline (labels: the nearer half's)."""
    a, b = warp_crop(image, left, flags), warp_crop(image, right, flags)
    w = np.clip((np.arange(CROP, dtype=np.float32) - mid) / (2 * band) + 0.5, 0, 1)[None, :]
    if flags == cv2.INTER_NEAREST:
        return np.where(w > 0.5, b, a)
    w = w[..., None] if np.asarray(image).ndim == 3 else w
    return (a * (1 - w) + b * w).astype(np.asarray(image).dtype)


def landmark_similarity(fa_ref, fa_id, points) -> np.ndarray | None:
    """The 2x3 similarity (rotation, scale, shift) that takes the reference crop's face-mesh
    ``points`` onto the identity's (least median of squares), or None without landmarks."""
    a, b = getattr(fa_ref, "crop_landmarks", None), getattr(fa_id, "crop_landmarks", None)
    if a is None or b is None or len(a) <= max(points) or len(b) <= max(points):
        return None
    src = np.asarray(a, np.float32)[list(points), :2]
    dst = np.asarray(b, np.float32)[list(points), :2]
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    return None if m is None or not np.isfinite(m).all() else m


def warp_crop(image: np.ndarray, warp: np.ndarray, flags: int = cv2.INTER_LINEAR) -> np.ndarray:
    """A crop-sized image (or labels, with ``cv2.INTER_NEAREST``) moved by the 2x3 ``warp``; what
    comes from beyond its edge is 0 (for labels: background)."""
    return cv2.warpAffine(np.ascontiguousarray(image), warp, (CROP, CROP), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def put_part(s_blend: np.ndarray, render: np.ndarray, from_ref: np.ndarray, labels_id: np.ndarray,
             crop: np.ndarray, labels: np.ndarray, classes, side=None) -> tuple:
    """The blend's face part replaced by a reference's own, moved onto the identity's
    (:meth:`EditPipeline._moved_parts`): the part's classes where the moved crop has them,
    skin where the blend or the identity had them and it has none (the composite fills that
    gap with the identity's skin).  ``side``: ("left" or "right", x of the face's midline)
    keeps an eye or a brow to its own half of the face (the two eyes are moved apart).

    Why: the tri-plane puts the reference's part where it sits on the canonical head, blurred
    by the render.  A mouth of another width or opening covered part of the identity's (an open
    smile) and the rest became a flat band of skin; eyes came out as small irises in pale, empty
    sockets.  Moved by their own landmarks, the reference's pixels land on the identity's.
    Shape: (H, W) uint8, (H, W, 3), (H, W), (H, W), (H, W, 3), (H, W) uint8 (background beyond
    the moved crop's edge), set -> (s_blend, render, from_ref)"""
    cls = sorted(classes)
    half = np.ones(labels.shape, bool)
    if side is not None:
        which, mid = side
        x = np.arange(labels.shape[1])[None, :]
        half = np.broadcast_to((x < mid) if which == "left" else (x >= mid), labels.shape)
    new = np.isin(labels, cls) & half
    if new.sum() < MIN_PART_PIXELS:
        return s_blend, render, from_ref
    old = (np.isin(s_blend, cls) | np.isin(labels_id, cls)) & half
    s_out = np.where(old & ~new, np.uint8(SKIN), s_blend).astype(s_blend.dtype)
    s_out[new] = labels[new]
    # the moved crop also round the part and where the old one was: the part's feathered edge
    # shows what lies beside it there (the render of the tri-plane's part was a dark outline)
    near = cv2.dilate(new.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    out = np.where((near | old)[..., None], crop, render).astype(np.float32)
    ref = np.where(new, 1.0, np.where(old, 0.0, from_ref)).astype(np.float32)
    return s_out, out, ref


def side_border(width: float = 28.0, size: int = CROP) -> np.ndarray:
    """1 at a square crop's left and right edges, fading to 0 ``width`` px inside (hair cut by
    the top or bottom of the frame is what any portrait shows). -> (size, size) float32"""
    r = np.arange(size, dtype=np.float32)
    d = np.minimum(r, size - 1 - r)
    return np.broadcast_to(np.clip(1.0 - d / width, 0, 1)[None, :], (size, size)).astype(np.float32)


def frame_border(width: float = 48.0, size: int = CROP) -> np.ndarray:
    """1 at a square crop's bottom edge, fading to 0 ``width`` px inside (where new hair is
    continued to the frame: :func:`composite.reach_frame`). -> (size, size) float32"""
    d = size - 1 - np.arange(size, dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(np.clip(1.0 - d / width, 0, 1)[:, None], (size, size)))


def crop_mask(mask, what: str, notes: list) -> np.ndarray:
    """A painted mask (float in [0, 1] or 0-255, grey or colour, any size) as float32
    (512, 512) in [0, 1]; a mask of another size is resized, with a note naming ``what``."""
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim == 3:
        m = m[..., :3].mean(-1) if m.shape[-1] >= 3 else m[..., 0]
    if m.max() > 1.0:
        m = m / 255.0
    if m.shape != (CROP, CROP):
        notes.append(f"{what} was {m.shape[1]}x{m.shape[0]} pixels; it was resized to the {CROP}x{CROP} crop")
        m = masks.resize_mask(torch.from_numpy(m), (CROP, CROP)).numpy()
    return np.clip(m, 0, 1).astype(np.float32)


def beyond_photo(fa) -> np.ndarray | None:
    """Crop pixels that lie beyond the photo's edge (the crop reflects the photo there), grown
    by 2 px; None when the analysis does not say where its crop came from. -> (512, 512) bool"""
    matrix, size = getattr(fa, "crop_matrix", None), getattr(fa, "image_size", None)
    if matrix is None or size is None:
        return None
    inv = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    ys, xs = np.mgrid[:CROP, :CROP].astype(np.float64)
    px = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    py = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    h, w = size[:2]
    outside = (px < 0) | (py < 0) | (px > w - 1) | (py > h - 1)
    return cv2.dilate(outside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def _outside_is_background(fa):
    """An analysis whose crop pixels beyond the photo's edge are labelled background: a
    mirrored copy of hair or shoulders is nothing to lift or take."""
    labels = getattr(fa, "labels", None)
    outside = beyond_photo(fa) if labels is not None else None
    if outside is None or not outside.any() or np.asarray(labels).shape != outside.shape:
        return fa
    lab = np.asarray(labels)
    return _with(fa, labels=np.where(outside, BACKGROUND, lab).astype(lab.dtype))


def unseen_glasses(parsed: np.ndarray, placed: np.ndarray, classes, names: list[str]) -> list[str]:
    """A note when eyeglasses were asked for and the face parser, run on the result, finds
    hardly any where the edit put them (fewer than ``MIN_SEEN_GLASSES_PX``): thin, light or
    rimless frames that a person may not see either.  The edit is kept; the user is told, and
    how to make the frames bolder.  ``placed``: the result's labels as the edit made them."""
    glasses = np.asarray(placed) == EYEGLASSES
    if EYEGLASSES not in set(classes) or not glasses.any():
        return []
    near = cv2.dilate(glasses.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    seen = int(((np.asarray(parsed) == EYEGLASSES) & near).sum())
    if seen >= MIN_SEEN_GLASSES_PX:
        return []
    who = ", ".join(names) if names else "the reference"
    return [f"the eyeglasses from {who} are hard to see on the result (the face parser finds {seen} pixels of "
            f"them: thin or light frames); paint the frames on the reference with a mask in add mode to make "
            f"them bolder, or pick another reference"]


def edge_of_view(fa, width: float = 48.0) -> np.ndarray:
    """1 where the reference's crop (at its sides) or photo ends, fading to 0 ``width`` px
    inside: hair that runs into it is cut straight there. -> (512, 512) float32"""
    border = side_border(width)
    outside = beyond_photo(fa)
    if outside is not None and outside.any():
        d = cv2.distanceTransform((~outside).astype(np.uint8), cv2.DIST_L2, 3)
        border = np.maximum(border, np.clip(1.0 - d / width, 0, 1))
    return border.astype(np.float32)


def _with(fa, **changes):
    """A copy of an analysis with some fields replaced (dataclass or plain object)."""
    if dataclasses.is_dataclass(fa):
        try:
            return dataclasses.replace(fa, **changes)
        except (TypeError, ValueError):
            pass
    out = copy.copy(fa)
    for k, v in changes.items():
        setattr(out, k, v)
    return out


__all__ = ["EditPipeline", "content_key", "CLASS_NAMES", "NUM_CLASSES", "ReferenceSpec"]
