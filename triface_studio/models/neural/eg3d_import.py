"""EG3D and TriPlaneNet checkpoints converted to the weights format (safetensors + JSON), safely.

The file is read with :mod:`triface_studio.models.safe_pickle` (nothing in it runs); the
generator's tensors and config are found in the stubs and written once with
:func:`triface_studio.models.weights.write_weights`.

    weights_path, config = import_checkpoint("ffhq512-128.pkl", out_dir)
    model = load_safetensors_model(weights_path)          # TriPlaneGenerator, strict names
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from triface_studio.core.files import atomic_write_bytes, sha256_file

from ..safe_pickle import PersistentStub, jsonable, module_state_dict, safe_load, stub_state
from ..weights import CheckpointError, load_safetensors_weights, write_weights
from .eg3d import EG3DConfig, TriPlaneGenerator


def _find_generator(obj):
    if isinstance(obj, PersistentStub) and obj.qualname == "TriPlaneGenerator":
        return obj
    if isinstance(obj, dict):
        for key in ("G_ema", "G"):
            if isinstance(obj.get(key), PersistentStub):
                return obj[key]
    return None


def _eg3d_config_from_stub(g: PersistentStub) -> dict:
    st = stub_state(g)
    kw = dict(jsonable(st.get("_init_kwargs") or {}))
    kw.pop("__class__", None)
    args = list(st.get("_init_args") or ())
    for name, v in zip(("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"), args):
        kw.setdefault(name, v)
    rk = dict(kw.get("rendering_kwargs") or {})
    if "neural_rendering_resolution" in st:
        rk["neural_rendering_resolution"] = int(st["neural_rendering_resolution"])
    kw["rendering_kwargs"] = rk
    return EG3DConfig.from_eg3d_init_kwargs(kw).to_dict()


def _fit_shapes(tensors: dict[str, torch.Tensor], cfg: dict) -> dict:
    """Sizes EG3D fixes in code (plane width, super-resolution widths, plane resolution) read
    from the tensors themselves, so smaller variants convert too."""
    cfg = dict(cfg)
    w0 = tensors.get("decoder.net.0.weight")
    if w0 is not None:
        cfg["decoder_hidden"], cfg["plane_channels"] = int(w0.shape[0]), int(w0.shape[1])
    b0, b1 = tensors.get("superresolution.block0.conv1.weight"), tensors.get("superresolution.block1.conv1.weight")
    if b0 is not None and b1 is not None:
        cfg["sr_channels"] = [int(b0.shape[0]), int(b1.shape[0])]
    res = [int(k.split(".")[2][1:]) for k in tensors if k.startswith("backbone.synthesis.b") and k.endswith(".const")]
    blocks = {int(k.split(".")[2][1:]) for k in tensors if k.startswith("backbone.synthesis.b")}
    if res and blocks:
        cfg["plane_resolution"] = max(blocks)
    return cfg


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and config of a supported checkpoint (without writing anything).

    Kinds: ``eg3d`` (EG3D network pickle: G_ema), ``eg3d-dict`` (TriPlaneNet's EG3D file:
    a dict with a ``G_ema`` state dict and ``init_kwargs``), ``triplanenet``
    ({'state_dict', 'opts'}).
    """
    path = Path(path)
    obj = safe_load(path)
    g = _find_generator(obj)
    if g is not None:
        tensors = module_state_dict(g)
        if not tensors:
            raise CheckpointError(f"{path}: the generator in this pickle holds no tensors")
        return tensors, {"kind": "eg3d", "eg3d": _fit_shapes(tensors, _eg3d_config_from_stub(g))}
    if isinstance(obj, dict) and isinstance(obj.get("G_ema"), dict) and "init_kwargs" in obj:
        tensors = {k: v for k, v in obj["G_ema"].items() if isinstance(v, torch.Tensor)}
        kw = dict(jsonable(obj["init_kwargs"]))
        kw.pop("__class__", None)
        cfg = {"kind": "eg3d", "eg3d": _fit_shapes(tensors, EG3DConfig.from_eg3d_init_kwargs(kw).to_dict())}
        if isinstance(obj.get("latent_avg"), torch.Tensor):
            tensors["latent_avg"] = obj["latent_avg"]
        return tensors, cfg
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and "opts" in obj:
        tensors = {k: v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise CheckpointError(f"{path}: the state_dict holds no tensors")
        opts = jsonable(obj["opts"])
        if isinstance(opts, dict):
            opts.pop("__class__", None)
        if isinstance(obj.get("latent_avg"), torch.Tensor):
            tensors["latent_avg"] = obj["latent_avg"]
        return tensors, {"kind": "triplanenet", "opts": opts}
    raise CheckpointError(f"{path}: not a supported checkpoint (expected an EG3D network pickle with G_ema, "
                          "TriPlaneNet's EG3D dict with G_ema + init_kwargs, or a TriPlaneNet "
                          "{'state_dict', 'opts'} file)")


def import_checkpoint(path: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, dict]:
    """Convert a checkpoint once into ``out_dir/<name>.safetensors`` + ``<name>.json``.

    Returns (weights path, config dict).  The JSON holds the config plus ``source`` (file name)
    and ``sha256`` of the original; files are written atomically.
    """
    path = Path(path)
    tensors, config = read_checkpoint(path)
    config = {**config, "source": path.name, "sha256": sha256_file(path)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = path.name.split(".")[0] or "checkpoint"
    weights = out_dir / f"{stem}.safetensors"
    config = write_weights(weights, tensors, config)
    atomic_write_bytes(out_dir / f"{stem}.json", (json.dumps(config, indent=2) + "\n").encode())
    return weights, config


def load_safetensors_model(weights_path: str | os.PathLike, device="cpu", dtype=torch.float32):
    """Build the network a converted checkpoint describes and load its weights (strict names).

    ``eg3d`` -> :class:`triface_studio.models.neural.eg3d.TriPlaneGenerator` in eval mode.
    """
    tensors, config = load_safetensors_weights(weights_path)
    kind = config.get("kind")
    if kind != "eg3d":
        raise CheckpointError(f"{weights_path}: a {kind!r} checkpoint is not a generator")
    latent_avg = tensors.pop("latent_avg", None)
    model = TriPlaneGenerator(EG3DConfig.from_dict(config["eg3d"]))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{weights_path}: weights do not fit the EG3D generator ({str(e)[:400]})") from None
    if latent_avg is not None:
        model.register_buffer("latent_avg", latent_avg)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
