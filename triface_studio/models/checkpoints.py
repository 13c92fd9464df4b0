"""Convert user checkpoints (EG3D .pkl, TriPlaneNet .pt/.pth) to safetensors + JSON, safely.

EG3D's pickles embed Python source (``torch_utils.persistence``) that ordinary unpickling
*executes*.  This module never does that: :class:`RestrictedUnpickler` resolves only an
allow-list of functions that rebuild tensors and plain containers; classes of the networks
(``training.*``, ``torch_utils.*``, ``dnnlib.*``, ``torch.nn.modules.*``) become inert
:class:`Stub` records of their pickled state, and EG3D's ``_reconstruct_persistent_obj`` hook
becomes a :class:`PersistentStub` that keeps the class name and state while the embedded
source stays a string nobody runs.  Any other global in the file is refused with
:class:`CheckpointError`.  Tensors are then collected from the stubs' ``_parameters`` and
``_buffers`` into a flat state dict with the usual dotted names.

    weights_path, config = import_checkpoint("ffhq512-128.pkl", out_dir)
    model = load_safetensors_model(weights_path)          # TriPlaneGenerator, strict names
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

FORMAT = "triface-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely or is not of a supported kind."""


class Stub(dict):
    """Inert stand-in for a pickled object of a network class: keeps its state, runs nothing.

    (A dict subclass so that pickled dict subclasses such as ``dnnlib.EasyDict`` keep their items.)
    """

    qualname = "?"

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:     # (dict state, slots state)
            state = {**(state[0] or {}), **(state[1] or {})}
        object.__setattr__(self, "state", state)

    def __reduce__(self):
        raise CheckpointError("stubs are not picklable")


class PersistentStub(Stub):
    """An EG3D ``persistent_class`` object: class name and state; its source is never run."""

    def __init__(self, meta: dict):
        super().__init__()
        meta = dict(meta)
        object.__setattr__(self, "qualname", str(meta.get("class_name", "?")))
        object.__setattr__(self, "state", meta.get("state") or {})
        object.__setattr__(self, "module_src", meta.get("module_src", ""))


_STUB_CLASSES: dict[str, type] = {}
_STRUCTURE_PREFIXES = ("training.", "torch_utils.", "dnnlib.", "torch.nn.modules.", "models.", "argparse.",
                       "criteria.", "configs.", "utils.", "camera_utils")


def _stub_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STUB_CLASSES:
        _STUB_CLASSES[key] = type(name, (Stub,), {"qualname": key, "__module__": __name__})
    return _STUB_CLASSES[key]


def _load_storage_from_bytes(b: bytes):
    # Storages inside a plain pickle are nested legacy torch.save files: read them tensor-only.
    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


def _reconstructor(cls, base, state=None):
    if not (isinstance(cls, type) and issubclass(cls, Stub)):
        raise CheckpointError(f"refusing to rebuild an object of {cls!r}")
    obj = cls()
    if state is not None and base is dict:
        obj.update(state)
    return obj


def _newobj(cls, *args):
    if not (isinstance(cls, type) and issubclass(cls, Stub)):
        raise CheckpointError(f"refusing to create an object of {cls!r}")
    return cls()


def _reconstruct_persistent(meta):
    return PersistentStub(meta)


def _np_multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _allowed_globals() -> dict[tuple[str, str], object]:
    import _codecs
    import collections

    import numpy as np

    allowed = {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _codecs.encode,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("copyreg", "__newobj__"): _newobj,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "object"): object,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "scalar"): _np_multiarray().scalar,
        ("numpy._core.multiarray", "scalar"): _np_multiarray().scalar,
        ("numpy.core.multiarray", "_reconstruct"): _np_multiarray()._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _np_multiarray()._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
    }
    for st in ("FloatStorage", "HalfStorage", "DoubleStorage", "LongStorage", "IntStorage", "ByteStorage",
               "BoolStorage", "BFloat16Storage", "ShortStorage", "CharStorage"):
        allowed[("torch", st)] = getattr(torch, st)
    for dt in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "int8", "bool", "int16"):
        allowed[("torch", dt)] = getattr(torch, dt)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only tensor rebuilders, plain containers and inert stubs (see module doc)."""

    _allowed: dict | None = None
    source = "the file"

    def find_class(self, module: str, name: str):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()
        fn = RestrictedUnpickler._allowed.get((module, name))
        if fn is not None:
            return fn
        if module.startswith(_STRUCTURE_PREFIXES) or module in ("argparse", "dnnlib", "training", "torch_utils"):
            if name.startswith("_") or not name[:1].isupper():
                raise CheckpointError(f"{self.source}: refusing to load: it calls {module}.{name}, which is not "
                                      "plain tensor data (the file would run code when unpickled)")
            return _stub_class(module, name)
        raise CheckpointError(f"{self.source}: refusing to load: it references {module}.{name}, which is not "
                              "plain tensor data; only EG3D pickles and TriPlaneNet/EG3D torch files are "
                              "read, without running any code they contain")


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load`` that uses :class:`RestrictedUnpickler`."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(f, **kw):
        return RestrictedUnpickler(f, **kw).load()


def safe_load(path: str | os.PathLike):
    """Read a pickle or torch file into plain containers, tensors and stubs without running
    any code it contains."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):                      # torch.save (zip) format
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                pass
            RestrictedUnpickler.source = str(path)
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head[:1] != b"\x80":
                raise CheckpointError(f"{path}: not a pickle or torch checkpoint")
            u = RestrictedUnpickler(f)
            u.source = str(path)
            return u.load()
    except CheckpointError:
        raise
    except Exception as e:  # corrupt or truncated files, legacy torch files, ...
        raise CheckpointError(f"{path}: cannot read this checkpoint safely ({type(e).__name__}: {e})") from None


def _state(obj) -> dict:
    st = getattr(obj, "state", None)
    return st if isinstance(st, dict) else {}


def module_state_dict(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flat ``state_dict`` of a stub tree of torch modules."""
    st = _state(obj)
    out: dict[str, torch.Tensor] = {}
    for key in ("_parameters", "_buffers"):
        for k, v in (st.get(key) or {}).items():
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v.detach().clone()
    for k, child in (st.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, prefix + k + "."))
    return out


def _jsonable(x):
    if isinstance(x, Stub):
        st = _state(x)
        return {"__class__": x.qualname, **{str(k): _jsonable(v) for k, v in {**dict(x), **st}.items()
                                            if not str(k).startswith("_")}}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist() if x.numel() <= 64 else f"<tensor {tuple(x.shape)}>"
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist() if x.size <= 64 else f"<array {x.shape}>"
    except ImportError:
        pass
    return repr(x)


def _find_generator(obj):
    if isinstance(obj, PersistentStub) and obj.qualname == "TriPlaneGenerator":
        return obj
    if isinstance(obj, dict):
        for key in ("G_ema", "G"):
            if isinstance(obj.get(key), PersistentStub):
                return obj[key]
    return None


def _eg3d_config_from_stub(g: PersistentStub) -> dict:
    from triface_studio.models.neural.eg3d import EG3DConfig

    st = _state(g)
    kw = dict(_jsonable(st.get("_init_kwargs") or {}))
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and config of a supported checkpoint (without writing anything).

    Kinds: ``eg3d`` (EG3D network pickle: G_ema), ``eg3d-dict`` (TriPlaneNet's EG3D file:
    a dict with a ``G_ema`` state dict and ``init_kwargs``), ``triplanenet``
    ({'state_dict', 'opts'}).
    """
    from triface_studio.models.neural.eg3d import EG3DConfig

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
        kw = dict(_jsonable(obj["init_kwargs"]))
        kw.pop("__class__", None)
        cfg = {"kind": "eg3d", "eg3d": _fit_shapes(tensors, EG3DConfig.from_eg3d_init_kwargs(kw).to_dict())}
        if isinstance(obj.get("latent_avg"), torch.Tensor):
            tensors["latent_avg"] = obj["latent_avg"]
        return tensors, cfg
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and "opts" in obj:
        tensors = {k: v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise CheckpointError(f"{path}: the state_dict holds no tensors")
        opts = _jsonable(obj["opts"])
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
    from safetensors.torch import save as st_save

    from triface_studio.core.images import atomic_write_bytes

    path = Path(path)
    tensors, config = read_checkpoint(path)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config, "source": path.name,
              "sha256": _sha256(path)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = path.name.split(".")[0] or "checkpoint"
    weights = out_dir / f"{stem}.safetensors"
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(weights, st_save(data, metadata={"format": FORMAT, "config": json.dumps(config)}))
    atomic_write_bytes(out_dir / f"{stem}.json", (json.dumps(config, indent=2) + "\n").encode())
    return weights, config


def load_safetensors_weights(weights_path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and config of a converted checkpoint."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(weights_path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p}: not a safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a converted TriFace checkpoint; run `triface models import FILE` first")
    return tensors, json.loads(meta.get("config", "{}"))


def load_safetensors_model(weights_path: str | os.PathLike, device="cpu", dtype=torch.float32):
    """Build the network a converted checkpoint describes and load its weights (strict names).

    ``eg3d`` -> :class:`triface_studio.models.neural.eg3d.TriPlaneGenerator` in eval mode.
    """
    from triface_studio.models.neural.eg3d import EG3DConfig, TriPlaneGenerator

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
