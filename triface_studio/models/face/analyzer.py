"""Face detection, dense 3D landmarks, head pose, alignment to the canonical 512 crop, crop camera
and semantic parsing.  Runs offline on CPU with the MediaPipe .tflite models shipped in
resources/models/face (LiteRT runtime) and the project's parser (resources/models/parser)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from triface_studio.core import cameras
from triface_studio.models.face import blazeface
from triface_studio.models.face.errors import NoFaceError

CROP_SIZE = 512
LM_SIZE = 192
MAX_ANALYSIS_SIDE = 2048
R_EYE_IDS = (33, 133, 159, 145)      # subject's right eye (image left): corners and lids
L_EYE_IDS = (263, 362, 386, 374)


def _models_dir() -> Path:
    from triface_studio.resources import resource_path

    return resource_path("models", "face")


def _load_canonical() -> np.ndarray:
    p = _models_dir() / "canonical_landmarks.npy"
    return np.load(p, allow_pickle=False).astype(np.float32)


try:
    CANONICAL_LANDMARKS = _load_canonical()
except (OSError, FileNotFoundError, ValueError):  # pragma: no cover - only while building the template
    CANONICAL_LANDMARKS = None


def similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src (N,2) to dst (N,2). -> (2, 3)"""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    a = (s * d).sum() / (s ** 2).sum()
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / (s ** 2).sum()
    M = np.array([[a, -b, 0.0], [b, a, 0.0]])
    M[:, 2] = md - M[:, :2] @ ms
    return M


def rigid_rotation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R (3, 3), det +1, of the best similarity dst ~ s R src + t (Umeyama)."""
    s, d = src - src.mean(0), dst - dst.mean(0)
    U, _, Vt = np.linalg.svd(d.T @ s)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def pose_from_rotation(R: np.ndarray) -> tuple[float, float, float]:
    """Head rotation in camera coordinates (x right, y down, z away; observed = R @ canonical)
    -> (yaw, pitch, roll) degrees of the orbit camera (core.cameras convention) that sees the
    canonical frontal head that way, and the in-plane roll of the face."""
    frontal = cameras.Camera.frontal().cam2world.double().numpy()
    w2c_front = np.linalg.inv(frontal)[:3, :3]
    w2c = R @ w2c_front
    c2w = w2c.T
    forward = c2w[:, 2]
    pivot = np.asarray(cameras.PIVOT, np.float64)
    # EG3D's sampler puts the camera at distance RADIUS from the world origin, looking at the
    # pivot: find the point of the line pivot - t * forward at that distance.
    pf = float(pivot @ forward)
    t = pf + math.sqrt(max(pf * pf - float(pivot @ pivot) + cameras.RADIUS ** 2, 0.0))
    m = np.eye(4)
    m[:3, :3] = c2w
    m[:3, 3] = pivot - t * forward
    import torch

    yaw, pitch = cameras.yaw_pitch_of(torch.from_numpy(m))
    roll = math.degrees(math.atan2(R[1, 0], R[0, 0]))
    return float(yaw), float(pitch), float(roll)


def rotation_from_pose(yaw: float, pitch: float) -> np.ndarray:
    """Inverse of :func:`pose_from_rotation` (roll 0): the R under which the orbit camera at
    (yaw, pitch) sees the canonical head."""
    frontal = cameras.Camera.frontal().cam2world.double().numpy()
    cam = cameras.Camera.orbit(yaw, pitch).cam2world.double().numpy()
    return np.linalg.inv(cam)[:3, :3] @ frontal[:3, :3]


#: world z of the template's nose tip (the front of the canonical head, a little before EG3D's pivot)
TEMPLATE_NOSE_Z = 0.26


def template_world_landmarks(landmarks: np.ndarray | None = None) -> np.ndarray:
    """The canonical landmark template in world units: each template point (crop pixels, with
    MediaPipe's relative depth in the same pixel units) unprojected through the frontal camera,
    the nose tip at ``TEMPLATE_NOSE_Z``.  Projecting it with the frontal camera gives the
    template back exactly.  ``landmarks`` converts other frontal crop landmarks the same way
    (see :func:`canonical_world_landmarks`).  Shape: -> (468, 3)."""
    C = (CANONICAL_LANDMARKS if landmarks is None else landmarks).astype(np.float64)
    f = cameras.FOCAL * CROP_SIZE
    cam_z = float(cameras.Camera.frontal().origin[2])
    per_px = (cam_z - TEMPLATE_NOSE_Z) / f                 # world units per pixel at the nose
    z = TEMPLATE_NOSE_Z - (C[:, 2] - C[:, 2].min()) * per_px
    d = cam_z - z
    x = (C[:, 0] - CROP_SIZE / 2) / f * d
    y = -(C[:, 1] - CROP_SIZE / 2) / f * d
    return np.stack([x, y, z], -1)


def canonical_world_landmarks(crop_landmarks: np.ndarray) -> np.ndarray:
    """One face's 3D landmarks (crop pixels and relative depth) with its head rotation undone,
    in world units like :func:`template_world_landmarks`: the person's own face shape in the
    canonical head space.  Shape: (468, 3) -> (468, 3)."""
    lm = np.asarray(crop_landmarks, np.float64)
    C = CANONICAL_LANDMARKS.astype(np.float64)
    R = rigid_rotation(C, lm)                                   # observed ~ s R canonical
    d, c = lm - lm.mean(0), C - C.mean(0)
    frontal = d @ R                                             # rotation undone (rows: R^T x)
    frontal *= np.sqrt((c ** 2).sum() / max((frontal ** 2).sum(), 1e-12))
    return template_world_landmarks(frontal + C.mean(0))


def fit_crop_camera(crop_landmarks: np.ndarray, yaw: float, pitch: float) -> cameras.Camera:
    """The orbit camera at (yaw, pitch) with roll, focal length and principal point fitted so
    that it projects the world template onto this crop's landmarks.

    The crop is aligned to the template by a 2D similarity, which for a turned head is a
    compromise; absorbing what is left into the camera (as EG3D's labels allow: they carry
    intrinsics) makes 3D points land where the photo shows them, so a lift undoes the pose and
    a render at this camera lines up with the crop.
    """
    import torch

    cam = cameras.Camera.orbit(yaw, pitch).to(dtype=torch.float64)
    W = torch.from_numpy(template_world_landmarks())
    P = cam.project(W, CROP_SIZE)[0].numpy()
    M = similarity_2d(P, np.asarray(crop_landmarks, np.float64)[:, :2])
    a, b = M[0, 0], M[1, 0]
    s, theta = math.hypot(a, b), math.atan2(b, a)
    # a camera rolled by -theta about its axis turns the image by +theta about the principal point
    c, sn = math.cos(-theta), math.sin(-theta)
    roll = torch.eye(4, dtype=torch.float64)
    roll[:2, :2] = torch.tensor([[c, -sn], [sn, c]], dtype=torch.float64)
    K = cam.K.clone()
    centre = K[:2, 2].numpy() * CROP_SIZE
    new_centre = M[:, :2] @ centre + M[:, 2]
    K[0, 0], K[1, 1] = K[0, 0] * s, K[1, 1] * s
    K[0, 2], K[1, 2] = new_centre[0] / CROP_SIZE, new_centre[1] / CROP_SIZE
    return cameras.Camera((cam.cam2world @ roll).float(), K.float())


@dataclass
class FaceAnalysis:
    name: str
    image_size: tuple[int, int]
    bbox: tuple[float, float, float, float]
    score: float
    num_faces: int
    face_index: int
    landmarks: np.ndarray
    crop: np.ndarray
    crop_matrix: np.ndarray
    crop_landmarks: np.ndarray
    pose: tuple[float, float, float]
    camera: cameras.Camera
    labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    crop_size: int = CROP_SIZE
    parser: str = ""            # which parser made ``labels`` ("shipped", "fused", "bisenet")

    def camera_label(self) -> np.ndarray:
        return self.camera.label().numpy().astype(np.float32)

    def photo_labels(self) -> np.ndarray | None:
        """``labels`` (the aligned crop's) moved back onto the photo: (H, W) uint8 of the photo's size,
        background where the crop does not reach; None without labels."""
        if self.labels is None:
            return None
        from triface_studio.models.parser.inference import labels_to_photo

        return labels_to_photo(self.labels, self.crop_matrix, self.image_size)

    def paste_back(self, edited_crop: np.ndarray, original: np.ndarray, mask: np.ndarray | None = None,
                   feather: float = 12.0) -> np.ndarray:
        """Warp an edited crop back into the original photo, blending with a feathered mask
        (the crop's own square by default, else ``mask`` (512, 512) in [0, 1])."""
        h, w = original.shape[:2]
        if mask is None:
            mask = np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
            b = int(feather * 2)
            mask[b:-b, b:-b] = 1.0
        mask = cv2.GaussianBlur(np.asarray(mask, np.float32), (0, 0), feather)
        inv = cv2.invertAffineTransform(self.crop_matrix)
        # only the crop's footprint changes: blend in that window, so a big photo gets no
        # full-size float copies (outside it the alpha is exactly 0)
        corners = np.array([[0, 0, 1], [CROP_SIZE, 0, 1], [0, CROP_SIZE, 1], [CROP_SIZE, CROP_SIZE, 1]], np.float64)
        pts = corners @ inv.T
        x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in pts.min(0))
        x1, y1 = min(int(np.ceil(pts[:, 0].max())) + 2, w), min(int(np.ceil(pts[:, 1].max())) + 2, h)
        out = np.array(original, dtype=np.uint8, copy=True)
        if x1 <= x0 or y1 <= y0:
            return out
        win = inv.copy()
        win[:, 2] -= (x0, y0)
        size = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(np.asarray(edited_crop, np.uint8), win, size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask, win, size, flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
        part = out[y0:y1, x0:x1].astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha
        out[y0:y1, x0:x1] = np.clip(part + 0.5, 0, 255).astype(np.uint8)
        return out


class _TFLite:
    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=1)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = [d["index"] for d in sorted(self.it.get_output_details(), key=lambda d: -int(np.prod(d["shape"])))]
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            self.it.set_tensor(self.inp, np.ascontiguousarray(x, np.float32))
            self.it.invoke()
            return [self.it.get_tensor(i).copy() for i in self.out]


_CACHE: dict[tuple[str, str], "FaceAnalyzer"] = {}
_CACHE_LOCK = threading.Lock()


def default_parser_kind() -> str:
    """``$TRIFACE_PARSER`` or ``auto`` (the fused parser when BiSeNet is installed, else the shipped one)."""
    import os

    return os.environ.get("TRIFACE_PARSER", "").strip().lower() or "auto"


class FaceAnalyzer:
    """``FaceAnalyzer(device, parser="auto")``: the models are loaded once per process (instances with
    the same device and parser share them).  ``parser`` (see
    :func:`triface_studio.models.parser.fusion.load_face_parser`): ``auto`` fuses the bundled parser
    with BiSeNet when ``triface models install bisenet`` has been run and uses the bundled parser
    alone otherwise; ``shipped``, ``fused`` or ``bisenet`` choose one; default ``$TRIFACE_PARSER``."""

    def __new__(cls, device: str = "cpu", parser: str | None = None):
        from triface_studio.models.parser.fusion import PARSER_KINDS

        kind = (parser or default_parser_kind()).lower()
        if kind not in PARSER_KINDS:
            raise ValueError(f"unknown parser {kind!r}; choose one of {', '.join(PARSER_KINDS)}")
        with _CACHE_LOCK:
            inst = _CACHE.get((str(device), kind))
            if inst is None:
                inst = super().__new__(cls)
                inst._init(str(device))
                inst.parser_kind = kind
                _CACHE[(str(device), kind)] = inst
            return inst

    def __init__(self, device: str = "cpu", parser: str | None = None) -> None:
        pass    # everything happens once, in __new__ / _init

    def _init(self, device: str) -> None:
        d = _models_dir()
        self.device = device
        self.parser_kind = "auto"
        self._det = _TFLite(d / "face_detection_short_range.tflite")
        self._lm = _TFLite(d / "face_landmark.tflite")
        self._parser = None
        self._parser_loaded = False
        self._parser_lock = threading.Lock()

    # ---------------------------------------------------------------- detection
    def _detect_square(self, img: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
        """Detect in the square window (x0, y0, side) of img (padded with black). -> (K, 17) image px."""
        h, w = img.shape[:2]
        s = INPUT = blazeface.INPUT_SIZE
        M = np.array([[s / side, 0, -x0 * s / side], [0, s / side, -y0 * s / side]])
        interp = cv2.INTER_AREA if side > s else cv2.INTER_LINEAR
        if interp == cv2.INTER_AREA:
            sub = img[max(y0, 0):min(y0 + side, h), max(x0, 0):min(x0 + side, w)]
            canvas = np.zeros((side, side, 3), np.uint8)
            canvas[max(-y0, 0):max(-y0, 0) + sub.shape[0], max(-x0, 0):max(-x0, 0) + sub.shape[1]] = sub
            inp = cv2.resize(canvas, (INPUT, INPUT), interpolation=cv2.INTER_AREA)
        else:
            inp = cv2.warpAffine(img, M, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderValue=0)
        x = inp.astype(np.float32)[None] / 127.5 - 1.0
        reg, logit = self._det(x)
        dets = blazeface.decode(reg, logit)
        if len(dets):
            dets = dets.copy()
            xy = np.r_[0:4, 5:17]
            dets[:, xy[0::2]] = dets[:, xy[0::2]] * side + x0
            dets[:, xy[1::2]] = dets[:, xy[1::2]] * side + y0
        return dets

    def _detect_full(self, img: np.ndarray, exhaustive: bool = False) -> np.ndarray:
        """Whole image, then (images of 640 px and more) overlapping tiles of 1/2 the long side
        (faces down to ~1/20 of the image); smaller tiles (1/4, 1/8, ... down to 160 px) while nothing is found (always
        when ``exhaustive``)."""
        h, w = img.shape[:2]
        side = max(h, w)
        found = [self._detect_square(img, (w - side) // 2, (h - side) // 2, side)]
        t = side // 2
        level = 0
        while t >= 160 and ((level == 0 and side >= 640) or exhaustive or not any(len(f) for f in found)):
            step = max(t // 2, 1)
            for y in range(0, max(h - t, 0) + step, step):
                for x in range(0, max(w - t, 0) + step, step):
                    found.append(self._detect_square(img, min(x, max(w - t, 0)), min(y, max(h - t, 0)), t))
                    if y >= h - t and x >= w - t:
                        break
                if y >= h - t:
                    break
            t //= 2
            level += 1
        found = [f for f in found if len(f)]
        if not found:
            return np.zeros((0, 17))
        dets = blazeface.weighted_nms(np.concatenate(found))
        area = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
        return dets[np.argsort(-area)]

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        """Face boxes (x0, y0, x1, y1, score) in image pixels, largest first."""
        img, scale = _analysis_image(image)
        dets = self._detect_full(img)
        return [(float(d[0] / scale), float(d[1] / scale), float(d[2] / scale), float(d[3] / scale), float(d[4]))
                for d in dets]

    # ---------------------------------------------------------------- landmarks
    def _landmarks_roi(self, img: np.ndarray, center, size: float, angle: float) -> tuple[np.ndarray, float]:
        c, s = np.cos(angle), np.sin(angle)
        k = size / LM_SIZE
        # local (192 px) -> image
        A = np.array([[k * c, -k * s], [k * s, k * c]])
        t = np.asarray(center, np.float64) - A @ np.array([LM_SIZE / 2, LM_SIZE / 2])
        fwd = np.hstack([A, t[:, None]])
        inv = cv2.invertAffineTransform(fwd)
        crop = cv2.warpAffine(img, inv, (LM_SIZE, LM_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        raw, presence = self._lm(crop.astype(np.float32)[None] / 255.0)
        pts = raw.reshape(468, 3).astype(np.float64)
        out = np.empty_like(pts)
        out[:, :2] = pts[:, :2] @ A.T + t
        out[:, 2] = pts[:, 2] * k
        score = float(1 / (1 + np.exp(-float(presence.reshape(-1)[0]))))
        return out, score

    def _landmarks_from_det(self, img: np.ndarray, det: np.ndarray) -> tuple[np.ndarray, float]:
        kp = det[5:17].reshape(6, 2)
        r_eye, l_eye = kp[0], kp[1]
        angle = math.atan2(l_eye[1] - r_eye[1], l_eye[0] - r_eye[0])
        cx, cy = (det[0] + det[2]) / 2, (det[1] + det[3]) / 2
        size = max(det[2] - det[0], det[3] - det[1]) * 1.5
        lm, score = self._landmarks_roi(img, (cx, cy), size, angle)
        # refine once from the landmarks themselves
        for _ in range(1):
            r = lm[list(R_EYE_IDS[:2]), :2].mean(0)
            le = lm[list(L_EYE_IDS[:2]), :2].mean(0)
            angle = math.atan2(le[1] - r[1], le[0] - r[0])
            ca, sa = math.cos(-angle), math.sin(-angle)
            rot = lm[:, :2] @ np.array([[ca, -sa], [sa, ca]]).T
            lo, hi = rot.min(0), rot.max(0)
            cen_r = (lo + hi) / 2
            cen = np.array([[ca, sa], [-sa, ca]]) @ cen_r
            size = max(hi - lo) * 1.5
            lm, score = self._landmarks_roi(img, cen, size, angle)
        return lm, score

    # ---------------------------------------------------------------- parser
    def _get_parser(self):
        with self._parser_lock:
            if not self._parser_loaded:
                from triface_studio.models.parser.fusion import load_face_parser

                self._parser = load_face_parser(self.parser_kind, self.device)
                self._parser_loaded = True
            return self._parser

    @property
    def parser_name(self) -> str:
        """Which parser ``parse`` runs ("shipped", "fused", "bisenet"; "" without one)."""
        p = self._get_parser()
        return "" if p is None else getattr(p, "name", "shipped")

    def parse(self, crop: np.ndarray) -> np.ndarray | None:
        """Class ids (S, S) uint8 (CelebAMask-HQ order) of an aligned crop, or None without weights."""
        p = self._get_parser()
        return None if p is None else p.parse(crop)

    # ---------------------------------------------------------------- all
    def analyze(self, image: np.ndarray, name: str = "image", parse: bool = True,
                face_index: int | None = None) -> FaceAnalysis:
        image = _as_rgb_uint8(image, name)
        img, scale = _analysis_image(image)
        notes: list[str] = []
        if scale != 1.0:
            notes.append(f"large image ({image.shape[1]}x{image.shape[0]}): analysed at {img.shape[1]}x{img.shape[0]}")
        dets = self._detect_full(img)
        detected = len(dets) > 0
        # keep the detections the landmark model confirms as faces
        confirmed = []
        for d in dets:
            lm_d, presence = self._landmarks_from_det(img, d)
            if presence >= 0.5:
                confirmed.append((d, lm_d))
        if not confirmed:   # small faces: search smaller tiles too
            more = self._detect_full(img, exhaustive=True)
            detected = detected or len(more) > 0
            for d in more:
                lm_d, presence = self._landmarks_from_det(img, d)
                if presence >= 0.5:
                    confirmed.append((d, lm_d))
        if not confirmed:
            if detected:
                raise NoFaceError(f"{name}: no face found that the landmark model can follow (a face seen "
                                  f"from the side, or heavily covered? a three-quarter view or closer works)")
            raise NoFaceError(f"{name}: no face found")
        dets = np.stack([c[0] for c in confirmed])
        if face_index is None:
            face_index = 0
            if len(dets) > 1:
                notes.append(f"{len(dets)} faces found; using the largest (face_index=0)")
        elif not 0 <= face_index < len(dets):
            raise NoFaceError(f"{name}: no face number {face_index} ({len(dets)} found)")
        det, lm = confirmed[face_index]
        face_px = (det[2] - det[0]) / scale
        if face_px < 64:
            notes.append(f"small face ({face_px:.0f} px wide): the crop is upsampled and will be blurry")
        lm_orig = lm.copy()
        lm_orig /= scale
        crop_matrix = similarity_2d(lm_orig[:, :2], CANONICAL_LANDMARKS[:, :2].astype(np.float64))
        # sample the crop from the analysis image (area-correct for huge photos)
        m_img = crop_matrix.copy()
        m_img[:, :2] = crop_matrix[:, :2] / scale
        k = math.hypot(crop_matrix[0, 0], crop_matrix[1, 0])
        crop = cv2.warpAffine(img if k / scale >= 1 or scale == 1.0 else img, m_img, (CROP_SIZE, CROP_SIZE),
                              flags=cv2.INTER_AREA if k < 0.5 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
        crop_lm = np.empty_like(lm_orig)
        crop_lm[:, :2] = lm_orig[:, :2] @ crop_matrix[:, :2].T + crop_matrix[:, 2]
        crop_lm[:, 2] = lm_orig[:, 2] * k
        R_img = rigid_rotation(CANONICAL_LANDMARKS.astype(np.float64), lm_orig)
        _, _, roll = pose_from_rotation(R_img)
        R_crop = rigid_rotation(CANONICAL_LANDMARKS.astype(np.float64), crop_lm)
        yaw, pitch, _ = pose_from_rotation(R_crop)
        camera = fit_crop_camera(crop_lm, yaw, pitch)
        bbox = tuple(float(v / scale) for v in det[:4])
        fa = FaceAnalysis(
            name=name, image_size=(int(image.shape[0]), int(image.shape[1])), bbox=bbox, score=float(det[4]),
            num_faces=len(dets), face_index=int(face_index), landmarks=lm_orig.astype(np.float32),
            crop=crop, crop_matrix=crop_matrix, crop_landmarks=crop_lm.astype(np.float32),
            pose=(yaw, pitch, roll), camera=camera, notes=notes,
        )
        if parse:
            fa.labels = self.parse(crop)
            fa.parser = self.parser_name if fa.labels is not None else ""
            if fa.labels is None:
                fa.notes.append("no face-parser weights installed: no semantic map")
        return fa


def _as_rgb_uint8(image: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, 2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 8:
        raise ValueError(f"{name}: expected an RGB image (H, W, 3), got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, 2)
    if a.shape[2] == 4:
        a = a[..., :3]
    if a.dtype == np.uint16:
        a = (a // 257).astype(np.uint8)
    elif a.dtype != np.uint8:
        f = a.astype(np.float32)
        if f.max() <= 1.0:
            f = f * 255.0
        a = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _analysis_image(image: np.ndarray) -> tuple[np.ndarray, float]:
    image = _as_rgb_uint8(image, "image")
    h, w = image.shape[:2]
    if max(h, w) <= MAX_ANALYSIS_SIDE:
        return image, 1.0
    s = MAX_ANALYSIS_SIDE / max(h, w)
    return cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA), s
