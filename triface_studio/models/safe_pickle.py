"""Reading untrusted pickles (EG3D .pkl, TriPlaneNet .pt/.pth) without running them.

EG3D's pickles embed Python source (``torch_utils.persistence``) that ordinary unpickling
*executes*.  This module never does that: :class:`RestrictedUnpickler` resolves only an
allow-list of functions that rebuild tensors and plain containers; classes of the networks
(``training.*``, ``torch_utils.*``, ``dnnlib.*``, ``torch.nn.modules.*``) become inert
:class:`Stub` records of their pickled state, and EG3D's ``_reconstruct_persistent_obj`` hook
becomes a :class:`PersistentStub` that keeps the class name and state while the embedded
source stays a string nobody runs.  Any other global in the file is refused with
:class:`~triface_studio.models.weights.CheckpointError`.  :func:`module_state_dict` collects the
tensors of a stub tree from its ``_parameters`` and ``_buffers`` with the usual dotted names.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import torch

from .weights import CheckpointError


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


def stub_state(obj) -> dict:
    st = getattr(obj, "state", None)
    return st if isinstance(st, dict) else {}


def module_state_dict(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flat ``state_dict`` of a stub tree of torch modules."""
    st = stub_state(obj)
    out: dict[str, torch.Tensor] = {}
    for key in ("_parameters", "_buffers"):
        for k, v in (st.get(key) or {}).items():
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v.detach().clone()
    for k, child in (st.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, prefix + k + "."))
    return out


def jsonable(x):
    if isinstance(x, Stub):
        st = stub_state(x)
        return {"__class__": x.qualname, **{str(k): jsonable(v) for k, v in {**dict(x), **st}.items()
                                            if not str(k).startswith("_")}}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in x]
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
