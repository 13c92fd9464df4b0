"""The weight-free ``relief`` tier and an analyser for aligned crops (a product feature: ``triface
eval --tier relief`` and the benchmarks run on it).

``AlignedAnalyzer`` takes photos that are already canonical 512 px crops (as the CelebAMask-HQ
images are) with known label maps; ``ReliefTier`` lifts a crop into a tri-plane as a thin
relief: the XY plane carries the crop's colour and labels, the density is a slab behind the
foreground.  Together they run the whole edit pipeline in well under a second with exactly
known answers, which the evaluation, the benchmarks and the tests use; they are no substitute
for the bundled or neural tiers' 3D.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from triface_studio.core import triplane
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import DecoderOutput, RenderOptions, render
from triface_studio.core.asset import TriPlaneAsset
from triface_studio.core.semantics import BACKGROUND, NUM_CLASSES

from triface_studio.models.face.errors import NoFaceError

from .edit import content_key


@dataclass
class AlignedAnalysis:
    """The fields of ``FaceAnalysis`` the pipeline uses, for an aligned 512 px crop."""

    name: str
    image_size: tuple
    crop: np.ndarray
    labels: np.ndarray | None
    camera: Camera = field(default_factory=Camera.frontal)
    notes: list = field(default_factory=list)
    crop_size: int = 512

    def paste_back(self, edited_crop: np.ndarray, original: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        H, W = original.shape[:2]
        ed = cv2.resize(edited_crop, (W, H), interpolation=cv2.INTER_LINEAR) if (H, W) != edited_crop.shape[:2] \
            else edited_crop
        if mask is None:
            return ed.copy()
        m = cv2.resize(mask.astype(np.float32), (W, H)) if (H, W) != mask.shape else mask
        out = original.astype(np.float32) * (1 - m[..., None]) + ed.astype(np.float32) * m[..., None]
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class AlignedAnalyzer:
    """Analyser for aligned crops: ``labels`` maps image content keys to label maps (see
    :meth:`add`); images registered with ``no_face`` raise :class:`NoFaceError`."""

    def __init__(self, parser=None):
        self._labels: dict[str, np.ndarray] = {}
        self._no_face: set[str] = set()
        self.parser = parser

    @staticmethod
    def _crop(image: np.ndarray) -> np.ndarray:
        if image.shape[:2] == (512, 512):
            return image
        return cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA)

    def add(self, image: np.ndarray, labels: np.ndarray | None = None, no_face: bool = False) -> None:
        key = content_key(self._crop(image))
        if no_face:
            self._no_face.add(key)
        if labels is not None:
            self._labels[key] = np.asarray(labels, np.uint8)

    def parse(self, crop: np.ndarray) -> np.ndarray:
        lab = self._labels.get(content_key(crop))
        if lab is not None:
            return lab
        if self.parser is not None:
            return self.parser(crop)
        raise ValueError("AlignedAnalyzer: no labels for this image")

    def analyze(self, image: np.ndarray, name: str = "", parse: bool = True, face_index=None) -> AlignedAnalysis:
        crop = self._crop(np.asarray(image))
        if content_key(crop) in self._no_face:
            raise NoFaceError(f"{name or 'image'}: no face found")
        return AlignedAnalysis(name, tuple(image.shape[:2]), crop, self.parse(crop) if parse else None)


class ReliefDecoder(torch.nn.Module):
    """Decodes ReliefTier planes: density from channel 0 inside a slab |z| < depth; colour from
    channels 1-3; semantic logits from channels 4-22."""

    aggregate = "sum"
    density_activation = "identity"

    def __init__(self, depth: float = 0.15, density: float = 200.0):
        super().__init__()
        self.depth, self.density = depth, density

    def forward(self, features, points, dirs):
        inside = (points[..., 2:3].abs() < self.depth) & (points[..., :2].abs() < triplane.BOX_HALF).all(-1, keepdim=True)
        dens = self.density * torch.sigmoid(12 * (features[..., :1] - 0.5)) * inside
        return DecoderOutput(dens, features[..., 1:4].clamp(0, 1), features[..., 4:4 + NUM_CLASSES])


class ReliefTier:
    """A tier without learned weights that lifts an aligned crop onto the XY plane."""

    name = "relief"

    def __init__(self, resolution: int = 128, device="cpu"):
        self.resolution = resolution
        self.device = torch.device(device)
        self.decoder = ReliefDecoder()
        self.render_options = RenderOptions(n_coarse=12, n_importance=0, background=(1.0, 1.0, 1.0))

    def encode(self, fa) -> TriPlaneAsset:
        R = self.resolution
        crop = torch.from_numpy(np.asarray(fa.crop, np.float32) / 255.0).permute(2, 0, 1)
        lab = torch.from_numpy(np.asarray(fa.labels).astype(np.int64))
        onehot = torch.nn.functional.one_hot(lab, NUM_CLASSES).permute(2, 0, 1).float()
        img = torch.cat([1 - onehot[BACKGROUND:BACKGROUND + 1], crop, onehot * 20 - 10])
        cam = getattr(fa, "camera", None) or Camera.frontal()
        # the slab's front face (z = depth) is what the camera sees
        xy = triplane.xy_plane_from_frontal(img, cam, R, depth=self.decoder.depth)
        planes = torch.zeros(1, 3, xy.shape[0], R, R)
        planes[0, 0] = xy
        return TriPlaneAsset(planes.to(self.device), "relief", cam)

    def render(self, asset, camera, resolution, options=None, progress=None):
        return render(asset.planes.to(self.device), self.decoder, camera, resolution,
                      options or self.render_options, progress)
