"""The weights format of converted checkpoints: safetensors whose metadata carries
``format`` (:data:`FORMAT`) and a JSON ``config`` (what network the tensors belong to).

    write_weights(path, tensors, config);  tensors, config = load_safetensors_weights(path)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from triface_studio.core.files import SafetensorsError, atomic_write_bytes, read_safetensors

FORMAT = "triface-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely or is not of a supported kind."""


def write_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict) -> dict:
    """Write ``tensors`` with ``config`` atomically -> the config as written (format and version added)."""
    from safetensors.torch import save as st_save

    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(data, metadata={"format": FORMAT, "config": json.dumps(config)}))
    return config


def is_weights_file(path: str | os.PathLike) -> bool:
    """A converted TriFace checkpoint (read from the header only; unreadable files are not)."""
    from triface_studio.core.files import safetensors_header

    try:
        return safetensors_header(path)[0].get("format") == FORMAT
    except SafetensorsError:
        return False


def load_safetensors_weights(weights_path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and config of a converted checkpoint."""
    p = Path(weights_path)
    try:
        tensors, meta = read_safetensors(p)
    except SafetensorsError as e:
        raise CheckpointError(str(e)) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a converted TriFace checkpoint; run `triface models import FILE` first")
    try:
        config = json.loads(meta.get("config", "{}"))
    except ValueError:
        raise CheckpointError(f"{p}: its config is not valid JSON") from None
    return tensors, config
