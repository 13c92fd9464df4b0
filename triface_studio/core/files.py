"""Files written whole or not at all, their hashes, and safetensors read with a clear error.

``atomic_path`` / ``atomic_write_bytes`` write through a temporary file in the destination's
folder and one rename, so a crash or cancel never leaves half a file; the file gets the mode a
plain ``open`` would give it (0666 less the umask), not mkstemp's 0600.  ``sha256_file`` hashes
in blocks.  ``read_safetensors`` is the one reader of safetensors files (tensors and metadata;
never pickle).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_UMASK: int | None = None


def current_umask() -> int:
    """The process's umask (read once; from /proc where it can be read without changing it)."""
    global _UMASK
    if _UMASK is None:
        try:
            line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("Umask:"))
            _UMASK = int(line.split()[1], 8)
        except (OSError, StopIteration, ValueError, IndexError):
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return _UMASK


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write (by any library); on success it is renamed
    onto ``path``, on any error removed.  OS errors name the destination, not the temporary file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".triface-", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name (bytes) the file system of ``folder`` allows; 255 where it does not say."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def sync_files(paths) -> None:
    """Flush files written without :func:`atomic_write_bytes`'s per-file fsync (e.g. into a
    staging folder that is renamed into place afterwards) to disk: one ``os.sync`` where the
    system has it (about a millisecond, against ~3 ms per file for fsync), else each file's."""
    if hasattr(os, "sync"):
        os.sync()
        return
    for p in paths:
        with open(p, "rb+") as f:
            os.fsync(f.fileno())


def sha256_file(path: str | os.PathLike, progress: Callable[[int], None] | None = None,
                chunk: int = 1 << 20) -> str:
    """The file's sha256 (hex); ``progress(n)`` after each block of n bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            if progress:
                progress(len(b))
    return h.hexdigest()


class SafetensorsError(ValueError):
    """A file that is not a readable safetensors file (the message names it)."""


def safetensors_header(path: str | os.PathLike) -> tuple[dict, dict[str, tuple]]:
    """(metadata, {name: shape}) of a safetensors file without reading its tensors."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            return dict(f.metadata() or {}), {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise SafetensorsError(f"{p}: not a safetensors file ({e})") from None


def read_safetensors(path: str | os.PathLike, device: str = "cpu") -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file; a missing or broken file -> SafetensorsError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise SafetensorsError(f"{p}: no such file")
    meta, _ = safetensors_header(p)
    try:
        return load_file(str(p), device=device), meta
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise SafetensorsError(f"{p}: not a safetensors file ({e})") from None
