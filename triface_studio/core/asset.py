"""A tri-plane with its metadata, saved as safetensors (never pickle).

File layout: one tensor ``planes`` (1, 3, C, R, R) plus string metadata: ``format``
(``triface-triplane``), ``format_version``, ``tier`` (bundled | neural), ``resolution``,
``channels``, ``source_camera`` (25 numbers, JSON) and ``extra`` (JSON object).  Extra
tensors a tier needs (for example the neural tier's latent ``ws``) are stored beside
``planes`` under their own names.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .cameras import Camera

FORMAT = "triface-triplane"
FORMAT_VERSION = 1


class AssetError(ValueError):
    """A tri-plane file is missing, unreadable or of another format."""


@dataclass
class TriPlaneAsset:
    """Shape: planes (1, 3, C, R, R)."""

    planes: torch.Tensor
    tier: str
    source_camera: Camera | None = None
    extra: dict = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def resolution(self) -> int:
        return int(self.planes.shape[-1])

    def to(self, device=None, dtype=None) -> "TriPlaneAsset":
        return TriPlaneAsset(self.planes.to(device=device, dtype=dtype), self.tier, self.source_camera,
                             dict(self.extra), {k: v.to(device=device) for k, v in self.tensors.items()})

    def replace(self, planes: torch.Tensor, **extra) -> "TriPlaneAsset":
        """The same asset with other planes (e.g. after blending)."""
        return TriPlaneAsset(planes, self.tier, self.source_camera, {**self.extra, **extra}, dict(self.tensors))

    def save(self, path: str | os.PathLike) -> None:
        from .files import atomic_write_bytes

        atomic_write_bytes(path, self.to_bytes())

    def to_bytes(self) -> bytes:
        """The file's bytes (safetensors) that :meth:`load` reads back."""
        from safetensors.torch import save as st_save

        meta = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "tier": self.tier,
            "resolution": str(self.resolution),
            "channels": str(int(self.planes.shape[2])),
            "source_camera": json.dumps(None if self.source_camera is None else
                                        [round(float(v), 7) for v in self.source_camera.label()]),
            "extra": json.dumps(self.extra),
        }
        tensors = {"planes": self.planes.detach().float().cpu().contiguous()}
        for k, v in self.tensors.items():
            tensors[k] = v.detach().cpu().contiguous()
        return st_save(tensors, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike, device=None, channels: int | None = None) -> "TriPlaneAsset":
        """Read a tri-plane file, checking what a renderer relies on (AssetError naming the
        file otherwise): the format and its version, metadata that parses (a 25-number finite
        camera, an ``extra`` object), planes of shape (1, 3, C, R, R) with C >= 1 (``channels``
        when given) and 8 <= R <= ``MAX_RESOLUTION``, a floating dtype (float16 and bfloat16
        are widened to float32) and only finite values."""
        from .files import SafetensorsError, read_safetensors, safetensors_header

        path = Path(path)
        if not path.is_file():
            raise AssetError(f"{path}: no such tri-plane file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise AssetError(f"{path}: {path.stat().st_size / 2**30:.1f} GB is too large for a tri-plane file")
        try:
            _meta, shapes = safetensors_header(path)
            if "planes" in shapes:               # before reading gigabytes of a wrong shape
                _check_shape(path, shapes["planes"], channels)
            tensors, meta = read_safetensors(path)
        except SafetensorsError as e:           # the message names the file already
            raise AssetError(f"{e} (a tri-plane file is expected)") from None
        if meta.get("format") != FORMAT or "planes" not in tensors:
            raise AssetError(f"{path}: not a TriFace tri-plane (format {meta.get('format')!r})")
        version = _meta_int(path, meta, "format_version", "0")
        if version > FORMAT_VERSION:
            raise AssetError(f"{path}: written by a newer TriFace Studio (format version "
                             f"{version} > {FORMAT_VERSION})")
        planes = _check_planes(path, tensors.pop("planes"), channels)
        for key, want in (("resolution", planes.shape[-1]), ("channels", planes.shape[2])):
            if key in meta and _meta_int(path, meta, key, "0") != want:
                raise AssetError(f"{path}: metadata says {key} {meta[key]}, the planes have {want}")
        cam = _meta_camera(path, meta.get("source_camera", "null"))
        extra = _meta_json(path, meta, "extra", "{}")
        if not isinstance(extra, dict):
            raise AssetError(f"{path}: metadata 'extra' must be a JSON object, not {type(extra).__name__}")
        tier = meta.get("tier", "bundled")
        if tier not in TIERS:
            raise AssetError(f"{path}: unknown tier {tier!r} ({', '.join(TIERS)})")
        return cls(planes.to(device), tier, cam, extra, {k: v.to(device) for k, v in tensors.items()})


#: what ``TriPlaneAsset.load`` accepts: tiers, the largest plane side and file size
TIERS = ("bundled", "neural", "relief")
MAX_RESOLUTION = 1024
MAX_FILE_BYTES = 4 << 30


def _check_shape(path: Path, shape: tuple, channels: int | None) -> None:
    if len(shape) != 5 or shape[0] != 1 or shape[1] != 3 or shape[3] != shape[4]:
        raise AssetError(f"{path}: planes have shape {shape}, expected (1, 3, C, R, R)")
    if shape[2] < 1 or (channels is not None and shape[2] != channels):
        want = f"{channels}" if channels is not None else "at least 1"
        raise AssetError(f"{path}: planes have {shape[2]} channels, expected {want}")
    if not 8 <= shape[3] <= MAX_RESOLUTION:
        raise AssetError(f"{path}: planes are {shape[3]}x{shape[4]}, expected 8 to {MAX_RESOLUTION} a side")


def _check_planes(path: Path, planes: torch.Tensor, channels: int | None) -> torch.Tensor:
    _check_shape(path, tuple(planes.shape), channels)
    if not planes.is_floating_point():
        raise AssetError(f"{path}: planes are {str(planes.dtype).replace('torch.', '')}, expected floating "
                         f"point numbers")
    planes = planes.float()
    if not bool(torch.isfinite(planes).all()):
        raise AssetError(f"{path}: planes hold NaN or infinite values")
    return planes


def _meta_int(path: Path, meta: dict, key: str, default: str) -> int:
    try:
        return int(meta.get(key, default))
    except (TypeError, ValueError):
        raise AssetError(f"{path}: metadata {key!r} must be a whole number, not {meta.get(key)!r}") from None


def _meta_json(path: Path, meta: dict, key: str, default: str):
    try:
        return json.loads(meta.get(key, default))
    except (TypeError, ValueError):
        raise AssetError(f"{path}: metadata {key!r} is not valid JSON") from None


def _meta_camera(path: Path, text: str) -> Camera | None:
    cam = _meta_json(path, {"source_camera": text}, "source_camera", "null")
    if cam is None:
        return None
    if (not isinstance(cam, list) or len(cam) != 25
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in cam)):
        raise AssetError(f"{path}: metadata 'source_camera' must be 25 finite numbers (an EG3D camera label)")
    try:
        return Camera.from_label(cam)
    except (ValueError, RuntimeError) as e:
        raise AssetError(f"{path}: metadata 'source_camera' is not a camera ({e})") from None
