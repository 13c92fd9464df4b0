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
import hashlib
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core import blending, compositing, masks, triplane
from triface_studio.core.cameras import Camera
from triface_studio.core.images import ImageError, load_image, to_float, to_uint8
from triface_studio.core.semantics import (BACKGROUND, CLASS_NAMES, EYEGLASSES, L_BROW, L_EAR, L_EYE, L_LIP, MOUTH,
                                           NECK, NOSE, NUM_CLASSES, R_BROW, R_EAR, R_EYE, SKIN, U_LIP,
                                           attribute_classes)

from .errors import Cancelled, EditError
from .refiners import ClassicalRefiner, colour_stats, harmonise, local_fill, make_refiner
from .requests import EditRequest, EditResult, ReferenceSpec

CROP = 512
#: a reference needs at least this many pixels of an attribute (in its 512 px crop)
MIN_ATTRIBUTE_PIXELS = 60
#: the identity's skin this close to a gap (px of the 512 crop) is repainted with the gap rather
#: than continued into it: along an old hairline it is shadowed and holds stray hairs
HAIRLINE_PX = 4

ProgressFn = Callable[[str, float], None]


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


def plane_to_image(plane_mask: torch.Tensor, camera: Camera, size: int, depth: float = 0.0) -> torch.Tensor:
    """Inverse of :func:`triface_studio.core.blending.plane_mask`: read an XY-plane mask where
    each pixel's ray meets the plane z = ``depth``. Shape: (R, R) -> (size, size)"""
    from triface_studio.core.rays import camera_rays

    cam = camera.to(plane_mask.device)
    o, d = camera_rays(cam.cam2world[None].float(), cam.K[None].float(), size)
    t = (depth - o[..., 2]) / torch.where(d[..., 2].abs() < 1e-6, torch.full_like(d[..., 2], 1e-6), d[..., 2])
    p = o + t[..., None] * d                                        # (1, M, 3)
    grid = (p[..., :2] / triplane.BOX_HALF).reshape(1, size, size, 2)  # x -> columns, y -> rows
    out = F.grid_sample(plane_mask.float()[None, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out[0, 0].clamp(0, 1)


#: classes whose colour is the wearer's complexion
SKIN_TONED = frozenset({NOSE, L_EAR, R_EAR, NECK})
#: classes that show where a person's face and neck are (for :func:`bare_head`)
FACE_PARTS = (SKIN, NOSE, EYEGLASSES, L_EYE, R_EYE, L_BROW, R_BROW, L_EAR, R_EAR, MOUTH, U_LIP, L_LIP, NECK)


def bare_head(labels: np.ndarray) -> np.ndarray | None:
    """Where the identity's bare head can be, from its labels: the convex hull of its face,
    ears and neck, and above the brows the whole width of that hull (the cranium).  A region
    the edit removes outside it (long hair beside the neck, a fringe beyond the temples) is
    background, not skin: the blend's generic bare skull is wider than most faces below the
    eyes.  -> (H, W) bool, or None when the labels show no face."""
    lab = np.asarray(labels)
    face = np.isin(lab, FACE_PARTS)
    if face.sum() < 64:
        return None
    pts = cv2.findNonZero(face.astype(np.uint8))
    hull = np.zeros(lab.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(pts), 1)
    out = hull.astype(bool)
    rows = np.nonzero(np.isin(lab, (L_BROW, R_BROW, L_EYE, R_EYE)).any(1))[0]
    if rows.size:
        cols = np.nonzero(out.any(0))[0]
        out[:rows.min(), cols.min():cols.max() + 1] = True
    return out


def _soft_region(labels_probs: torch.Tensor, classes) -> torch.Tensor:
    return masks.class_mask_from_probs(labels_probs, classes)[0, 0]


class EditPipeline:
    """Runs edits with one model tier on one device.

    ``tier``: "bundled", "neural" or a ready :class:`~triface_studio.models.base.Tier` object;
    ``analyzer``: a ``FaceAnalyzer`` (default: the bundled one, created on first use);
    ``checkpoint_dir``: the neural tier's checkpoint folder (default: the user's models folder).
    """

    def __init__(self, tier="bundled", device: str = "cpu", analyzer=None, checkpoint_dir: str | None = None):
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

    def analyze(self, image, name: str = "", role: str = "image"):
        """Face analysis of a portrait (cached by pixel content). No face -> EditError naming it."""
        arr, nm = self.load(image, name, role)
        key = content_key(arr)
        with self._lock:
            fa = self._analyses.get(key)
        if fa is None:
            try:
                fa = self.analyzer.analyze(arr, name=nm, parse=True)
            except ValueError as e:  # NoFaceError is a ValueError
                if type(e).__name__ == "NoFaceError":
                    detail = str(e).split(": ", 1)[-1]           # the analyser's reason, without the name
                    raise EditError(f"{role} {nm}: {detail}") from None
                raise
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

    # -- rendering -------------------------------------------------------------------------
    def _render(self, asset, camera: Camera, resolution: int, job: _Job | None = None, span=(0.0, 1.0)):
        """Render with semantics; a tier without a semantic head gets them from the parser."""
        prog = None
        if job is not None:
            a, b = span
            prog = lambda f: job.report(a + (b - a) * f)  # noqa: E731
        with torch.no_grad():
            out = self.tier.render(asset, camera, resolution, progress=prog)
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
            labels = out.semantics[0].argmax(0).to(torch.uint8).cpu().numpy()
        return to_uint8(rgb), labels

    # -- the edit ------------------------------------------------------------------------------
    def run(self, request: EditRequest, progress: ProgressFn | None = None,
            cancel: threading.Event | None = None) -> EditResult:
        """Run one edit. Raises EditError (bad input, with a user-facing message) or Cancelled."""
        job = _Job(progress, cancel)
        notes: list[str] = []
        if not request.references:
            raise EditError("an edit needs at least one reference and attribute")
        for i, ref in enumerate(request.references):
            if not ref.attributes:
                raise EditError(f"reference {i + 1} has no attribute to take")
            if ref.mask_mode not in ("replace", "add", "subtract"):
                raise EditError(f"mask mode must be replace, add or subtract, not {ref.mask_mode!r}")
            self._classes(ref.attributes)
        settings = request.refine
        refiner = make_refiner(settings, self.device)
        torch.manual_seed(int(request.seed))

        with job("analyze"):
            id_img, id_name = self.load(request.identity, request.identity_name, "identity")
            fa_id = self.analyze(id_img, id_name, "identity")
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
            t_id = self.encode(fa_id)
            t_refs = []
            for i, (_, fa, _) in enumerate(refs):
                t_refs.append(self.encode(fa))
                job.report((i + 1) / len(refs))

        R = t_id.planes.shape[-1]
        frontal = Camera.frontal()
        rr = int(request.render_resolution)
        cam_id = getattr(fa_id, "camera", None) or frontal
        align_res = 96          # frontal semantics only feed plane masks; 96 px is plenty
        all_classes: set[int] = set()
        steps = []
        with job("align"):
            # identity's frontal semantics (its M_-k is taken per reference below)
            sem_id = self._render(t_id, frontal, align_res, job, (0.0, 0.3)).semantics
            for i, ((spec, fa, _img), t_ref) in enumerate(zip(refs, t_refs)):
                classes = self._classes(spec.attributes)
                all_classes |= classes
                ref_name = getattr(fa, "name", f"reference {i + 1}")
                ref_labels = self._labels(fa)
                present = int(masks.class_mask(ref_labels, classes).sum())
                has_user = spec.user_mask is not None and spec.mask_mode in ("replace", "add")
                if present < MIN_ATTRIBUTE_PIXELS and not has_user:
                    what = ", ".join(spec.attributes)
                    raise EditError(f"reference {ref_name} shows no {what} (found {present} pixels of it); "
                                    f"pick another reference or paint the region with a mask in add or replace mode")
                sem_ref = self._render(t_ref, frontal, align_res, job,
                                       (0.3 + 0.7 * i / len(refs), 0.3 + 0.7 * (i + 1) / len(refs))).semantics
                mk_front = _soft_region(sem_ref, classes)
                plane_mk = blending.plane_mask(mk_front, R, frontal)
                if spec.user_mask is not None:
                    um = crop_mask(spec.user_mask, f"the mask for {ref_name}", notes)
                    ref_cam = getattr(fa, "camera", None) or frontal
                    plane_user = blending.plane_mask(torch.from_numpy(um), R, ref_cam)
                    plane_mk = masks.combine_user_mask(plane_mk, plane_user, spec.mask_mode)
                # the identity's region k, grown by a pixel: its anti-aliased rim would otherwise
                # stay behind as a thin line of the old colour (old hair around the new)
                m_not = 1 - masks.dilate((_soft_region(sem_id, classes) > 0.5).float(), 1)
                plane_not = blending.plane_mask(m_not, R, frontal)
                if spec.user_mask is not None and spec.mask_mode == "subtract":
                    # what the user subtracts is kept from the identity, not removed from it
                    plane_not = torch.maximum(plane_not, plane_user)
                if float(plane_mk.max()) < 0.5:
                    raise EditError(f"the region to take from {ref_name} is empty "
                                    f"(the mask removed all of it)")
                steps.append((t_ref.planes.to(t_id.planes), plane_mk.to(t_id.planes), plane_not.to(t_id.planes)))

        with job("blend"):
            planes = blending.blend_sequence(t_id.planes, steps)
            from_ref = plane_to_image(torch.stack([m for _, m, _ in steps]).amax(0).cpu(), cam_id, CROP)
            t_blend = t_id.replace(planes, edit="blend")

        with job("render"):
            out = self._render(t_blend, cam_id, rr, job)
            rgb = out.rgb[:, :3].float().clamp(0, 1)
            sem = out.semantics.float()
            if rr != CROP:
                rgb = F.interpolate(rgb, size=(CROP, CROP), mode="bilinear", align_corners=False)
                sem = F.interpolate(sem, size=(CROP, CROP), mode="bilinear", align_corners=False)
            i_ref_hat = rgb[0].permute(1, 2, 0).cpu().numpy()
            s_blend_probs = sem[0].cpu()
            s_blend = s_blend_probs.argmax(0).to(torch.uint8).numpy()

        with job("composite"):
            comp = self._composite(request, fa_id, labels_id, refs, i_ref_hat, s_blend, sorted(all_classes),
                                   settings, notes, from_ref.numpy())
            s_blend = comp["s_blend"]

        with job("refine"):
            coarse = comp["coarse"]
            kwargs = {}
            if isinstance(refiner, ClassicalRefiner):
                kwargs = dict(holes=comp["holes"], seams=comp["seams"], region=comp["harmonise"], target=comp["target"],
                              fill=comp["fill"], valid=comp["valid"])
            refined = refiner.refine(coarse, comp["m_sde"], seed=int(request.seed), progress=job.report, **kwargs)
            refined = compositing.refine_blend(torch.from_numpy(np.asarray(refined, np.float32)),
                                               torch.from_numpy(coarse), torch.from_numpy(comp["m_sde"])).numpy()

        with job("final"):
            i_com = compositing.final_composite(torch.from_numpy(refined), torch.from_numpy(comp["m_bg"]),
                                                torch.from_numpy(comp["i_bg"])).numpy()
            change = np.maximum(comp["m_sde"], comp["changed_bg"])
            protect = self._protect_mask(request.identity_mask, notes)
            if protect is not None:
                i_com = i_com * (1 - protect[..., None]) + to_float(fa_id.crop) * protect[..., None]
                change = change * (1 - protect)
            composite = to_uint8(i_com)
            alpha = None
            if request.background == "transparent":
                alpha = (1 - comp["m_bg"]).astype(np.float32)
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
            fa_com = _with(fa_com, labels=np.asarray(parsed))
            with torch.no_grad():
                t_com = self.tier.encode(fa_com)

        return EditResult(
            t_blend=t_blend, t_com=t_com, s_blend=s_blend, coarse=coarse.astype(np.float32),
            refined=refined.astype(np.float32), composite=composite, composite_full=np.asarray(full),
            gap_mask=comp["gap"].astype(np.float32), sde_mask=comp["m_sde"].astype(np.float32),
            edit_region=comp["region"].astype(np.float32), timings=dict(job.timings), notes=notes,
            identity=fa_id, references=[fa for _, fa, _ in refs], request=request, alpha=alpha,
            s_blend_probs=None,
        )

    def _composite(self, request, fa_id, labels_id, refs, i_ref_hat, s_blend, classes, settings, notes,
                   from_ref) -> dict:
        """Eqs. 13-18 on the 512 crop (numpy float32)."""
        i_id = to_float(fa_id.crop)
        lab_id = torch.from_numpy(labels_id.astype(np.int64))
        lab_bl = torch.from_numpy(s_blend.astype(np.int64))
        m_k_blend = masks.class_mask(lab_bl, classes)
        m_k_id = masks.class_mask(lab_id, classes)
        bg_blend = masks.class_mask(lab_bl, [BACKGROUND])
        bg_id = masks.class_mask(lab_id, [BACKGROUND])
        # The edit may change pixels only near region k (old or new): elsewhere the identity's
        # parser labels are more faithful than the render's, so M_bg comes from them there.
        region = torch.maximum(m_k_blend, m_k_id)
        m_bg = torch.where(region > 0.5, bg_blend, bg_id)
        # eqs. 15-16: the gap (old region k that is now neither k nor background), only where the
        # identity's bare head can be: elsewhere what the removed region hid is background
        # (inpainted like the rest of it)
        m_gap = compositing.gap_mask(m_k_blend, m_bg, m_k_id)
        head = bare_head(labels_id)
        if head is not None:
            outside = m_gap * torch.from_numpy((~head).astype(np.float32))
            if float(outside.sum()) > 0:
                m_bg = torch.maximum(m_bg, outside)
                m_gap = m_gap - outside
                s_blend = np.where(outside.numpy() > 0.5, BACKGROUND, s_blend).astype(s_blend.dtype)
        # eq. 13
        coarse = compositing.coarse_composite(torch.from_numpy(i_id), torch.from_numpy(i_ref_hat), m_k_blend, m_bg)
        opaque = torch.ones_like(m_k_blend)
        if EYEGLASSES in classes and settings.refiner == "classical":
            # Without a diffusion model to repaint them, the reference's eyes and skin seen
            # through its lenses would be pasted onto the identity: keep the frame (and tinted
            # lenses), let clear lens pixels show the identity.
            skin_ref = [to_float(fa.crop)[self._labels(fa) == SKIN] for spec, fa, _ in refs
                        if EYEGLASSES in self._classes(spec.attributes)]
            skin_ref = [p for p in skin_ref if len(p) >= 16]
            if skin_ref:
                glasses = masks.class_mask(lab_bl, [EYEGLASSES])
                see = glasses * (1 - torch.from_numpy(lens_opacity(i_ref_hat, np.concatenate(skin_ref))))
                coarse = coarse * (1 - see[..., None]) + torch.from_numpy(i_id) * see[..., None]
                opaque = 1 - see
        # eq. 17: the gap gets mean skin
        skin = masks.class_mask(lab_id, [SKIN])
        if float(skin.sum()) < 16:
            skin = 1 - bg_id
        mean_skin = compositing.mean_colour(torch.from_numpy(i_id), skin)
        # for the refiner: the identity's skin colour continued smoothly into the gaps, from skin
        # that is not the old hairline's shadow
        skin_valid = skin * (1 - m_k_id) * (1 - m_k_blend)
        hairline = masks.dilate(m_gap, HAIRLINE_PX) * skin_valid
        skin_valid = (skin_valid * (1 - hairline)).numpy()
        fill = local_fill(i_id, skin_valid if skin_valid.sum() >= 16 else skin.numpy())
        coarse = compositing.fill_gaps(coarse, m_gap, mean_skin)
        # Parts made of skin (nose, ears, neck) take their shape from the reference and their
        # tone from the identity: a nose in the reference's complexion reads as a patch.
        tone = masks.class_mask(lab_bl, sorted(set(classes) & SKIN_TONED)) * torch.from_numpy(
            (from_ref > 0.5).astype(np.float32))
        if float(tone.sum()) >= 16 and float(skin.sum()) >= 16:
            coarse = torch.from_numpy(harmonise(coarse.numpy().astype(np.float32), tone.numpy(),
                                                colour_stats(i_id, skin.numpy()), 1.0)).to(coarse.dtype)
        # eq. 18
        m_sde = compositing.sde_mask(m_k_blend, m_gap, settings.dilate_radius, settings.blur_sigma)
        # eq. 14: the background image
        i_bg = self._background(request, i_id, bg_id, refs, notes)
        # the identity's foreground that becomes background (e.g. where long hair was)
        changed_bg = (m_bg * (1 - bg_id)).clamp(0, 1)
        if request.background != "identity":
            changed_bg = torch.ones_like(changed_bg)
        # colour target: the references' real pixels of their attributes
        target = None
        pix = []
        for spec, fa, _ in refs:
            lab = self._labels(fa)
            sel = masks.class_mask(lab, self._classes(spec.attributes)).numpy() > 0.5
            if sel.sum() >= 16:
                pix.append(to_float(fa.crop)[sel])
        if pix:
            allpix = np.concatenate(pix)[None]
            target = colour_stats(allpix, np.ones(allpix.shape[:2], np.float32))
        edge = masks.dilate(m_k_blend, 2) - (1 - masks.dilate(1 - m_k_blend, 2))
        seams = masks.gaussian_blur(edge.clamp(0, 1), 1.0).clamp(0, 1)
        return {
            "coarse": coarse.numpy().astype(np.float32),
            "gap": m_gap.numpy().astype(np.float32),
            "holes": torch.maximum(m_gap, hairline).numpy().astype(np.float32),
            "m_sde": m_sde.numpy().astype(np.float32),
            "m_bg": m_bg.numpy().astype(np.float32),
            "m_k": m_k_blend.numpy().astype(np.float32),
            "harmonise": (m_k_blend.numpy() * (from_ref > 0.5) * opaque.numpy()
                          * (1 - tone.numpy())).astype(np.float32),
            "i_bg": i_bg.astype(np.float32),
            "region": torch.maximum(torch.maximum(m_k_blend, m_k_id), m_gap).numpy(),
            "changed_bg": masks.gaussian_blur(changed_bg, 1.0).clamp(0, 1).numpy(),
            "target": target,
            "seams": seams.numpy().astype(np.float32),
            "s_blend": s_blend,
            "fill": fill,
            "valid": skin_valid,
        }

    @staticmethod
    def _protect_mask(mask, notes: list) -> np.ndarray | None:
        """The identity's protect mask on the crop, feathered by a pixel so its edge does not
        show; None when there is none or it is empty."""
        if mask is None or not np.asarray(mask).any():
            return None
        m = crop_mask(mask, "the identity's mask", notes)
        return np.clip(cv2.GaussianBlur(m, (0, 0), 1.0), 0, 1).astype(np.float32)

    def _background(self, request, i_id, bg_id, refs, notes) -> np.ndarray:
        """Eq. 14's I^bg: the identity's (or the first reference's) background with the head
        inpainted away, a flat colour, or black for a transparent result."""
        bg = request.background
        if isinstance(bg, str):
            if bg == "identity":
                return inpaint_background(i_id, bg_id.numpy())
            if bg == "reference":
                _, fa, _ = refs[0]
                lab = self._labels(fa)
                return inpaint_background(to_float(fa.crop), (lab == BACKGROUND).astype(np.float32))
            if bg == "transparent":
                return np.zeros_like(i_id)
            raise EditError(f"background must be identity, reference, transparent or a colour, not {bg!r}")
        c = np.asarray(bg, dtype=np.float32).reshape(-1)
        if c.size != 3:
            raise EditError(f"a background colour needs 3 numbers, got {list(c)}")
        if c.max() > 1.0:
            c = c / 255.0
        return np.broadcast_to(np.clip(c, 0, 1), i_id.shape).copy()


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


def lens_opacity(image: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """How much of each pixel of ``image`` ((H, W, 3) float RGB) is eyeglass frame or tinted lens
    rather than the wearer's face seen through a clear lens, given the wearer's skin pixels
    ((N, 3) float RGB): pixels near the skin colour, or lighter than it (glare, eye whites),
    are see-through.  -> (H, W) float32 in [0, 1]."""
    lab = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2Lab)
    ref = cv2.cvtColor(np.asarray(skin, np.float32).reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    centre = np.median(ref, 0)
    dist = np.linalg.norm(lab - centre, axis=-1)
    alpha = np.clip((dist - 12.0) / 15.0, 0, 1) * np.clip((centre[0] + 5.0 - lab[..., 0]) / 10.0, 0, 1)
    return alpha.astype(np.float32)


def inpaint_background(image: np.ndarray, bg: np.ndarray, work: int = 128) -> np.ndarray:
    """The background of ``image`` ((H, W, 3) float) with the foreground (where ``bg`` < 0.5)
    filled from the surrounding background (Telea inpainting at ``work`` px, upsampled)."""
    H, W = bg.shape
    fg = (np.asarray(bg) < 0.5).astype(np.uint8)
    if fg.sum() == 0:
        return image
    if fg.mean() > 0.995:
        return np.broadcast_to(image.reshape(-1, 3).mean(0), image.shape).copy()
    small = cv2.resize(image, (work, work), interpolation=cv2.INTER_AREA)
    m = cv2.resize(fg * 255, (work, work), interpolation=cv2.INTER_AREA)
    m = cv2.dilate((m > 0).astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(to_uint8(small), m, 5, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
    filled = cv2.GaussianBlur(filled, (0, 0), 1.5)
    up = cv2.resize(filled, (W, H), interpolation=cv2.INTER_LINEAR)
    return np.where(fg[..., None] > 0, up, image).astype(np.float32)


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


__all__ = ["EditPipeline", "content_key", "inpaint_background", "CLASS_NAMES", "NUM_CLASSES", "ReferenceSpec"]
