"""A tri-plane with its metadata, saved as safetensors (never pickle).

File layout: one tensor ``planes`` (1, 3, C, R, R) plus string metadata: ``format``
(``triface-triplane``), ``format_version``, ``tier`` (bundled | neural), ``resolution``,
``channels``, ``source_camera`` (25 numbers, JSON) and ``extra`` (JSON object).  Extra
tensors a tier needs (for example the neural tier's latent ``ws``) are stored beside
``planes`` under their own names.
"""

from __future__ import annotations

import json
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
        from safetensors.torch import save as st_save

        from .images import atomic_write_bytes

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
        atomic_write_bytes(path, st_save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike, device=None) -> "TriPlaneAsset":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise AssetError(f"{path}: no such tri-plane file")
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise AssetError(f"{path}: not a safetensors tri-plane file ({e})") from None
        if meta.get("format") != FORMAT or "planes" not in tensors:
            raise AssetError(f"{path}: not a TriFace tri-plane (format {meta.get('format')!r})")
        if int(meta.get("format_version", "0")) > FORMAT_VERSION:
            raise AssetError(f"{path}: written by a newer TriFace Studio (format version "
                             f"{meta['format_version']} > {FORMAT_VERSION})")
        cam = json.loads(meta.get("source_camera", "null"))
        planes = tensors.pop("planes")
        if planes.ndim != 5 or planes.shape[1] != 3:
            raise AssetError(f"{path}: planes have shape {tuple(planes.shape)}, expected (1, 3, C, R, R)")
        return cls(planes.to(device), meta.get("tier", "bundled"), None if cam is None else Camera.from_label(cam),
                   json.loads(meta.get("extra", "{}")), {k: v.to(device) for k, v in tensors.items()})
