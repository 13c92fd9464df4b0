"""Resumable, hash-checked downloads that never leave a half file under the final name.

The bytes go to ``<dest>.part`` beside the destination.  When the connection drops, the next
attempt (in this call, or a later run) asks the server for the rest with an HTTP ``Range`` header
and appends; a server that ignores ``Range`` (status 200) makes it start over.  Once complete, the
sha256 is checked: a mismatch deletes the ``.part`` file and raises; a match renames it onto
the destination in one step (``os.replace``).  Standard library only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

Progress = Callable[[int, "int | None"], None]   # (bytes so far, total or None)


class DownloadError(OSError):
    """A download that failed; the message says what to do."""


class HashMismatch(DownloadError):
    pass


def _hash_existing(path: Path, h) -> int:
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            h.update(b)
            n += len(b)


def download_file(url: str, dest: str | os.PathLike, *, sha256: str | None = None,
                  sha256_prefix: str | None = None, progress: Progress | None = None,
                  cancel: threading.Event | None = None, retries: int = 5, timeout: float = 30.0,
                  chunk: int = 1 << 16, user_agent: str = "triface-studio") -> str:
    """Download ``url`` to ``dest``; returns the sha256 of the file.

    ``sha256`` (full) or ``sha256_prefix`` are checked before the file gets its final name.
    Up to ``retries`` interrupted transfers are resumed.  ``cancel`` stops between chunks and keeps
    the ``.part`` file for a later resume.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempts = 0
    while True:
        h = hashlib.sha256()
        have = _hash_existing(part, h) if part.exists() else 0
        req = urllib.request.Request(url, headers={"User-Agent": user_agent})
        if have:
            req.add_header("Range", f"bytes={have}-")
        total: int | None = None
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status = resp.status
                length = resp.headers.get("Content-Length")
                if have and status == 206:
                    mode = "ab"
                    crange = resp.headers.get("Content-Range", "")
                    if crange.rpartition("/")[2].isdigit():
                        total = int(crange.rpartition("/")[2])
                    elif length is not None:
                        total = have + int(length)
                else:                       # 200 (no resume support) or a fresh start
                    mode, have, h = "wb", 0, hashlib.sha256()
                    total = int(length) if length is not None else None
                with open(part, mode) as f:
                    while True:
                        if cancel is not None and cancel.is_set():
                            raise DownloadError(f"download of {dest.name} cancelled; run it again to resume")
                        b = resp.read(chunk)
                        if not b:
                            break
                        f.write(b)
                        h.update(b)
                        have += len(b)
                        if progress:
                            progress(have, total)
                if total is not None and have < total:
                    raise http.client.IncompleteRead(b"", total - have)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:          # .part already complete (or stale): fall through to checks
                pass
            else:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
        except (http.client.IncompleteRead, http.client.HTTPException, ConnectionError, TimeoutError,
                urllib.error.URLError, OSError) as e:
            if isinstance(e, DownloadError):
                raise
            attempts += 1
            if attempts > retries:
                raise DownloadError(f"{url}: download interrupted ({e}); {part.stat().st_size if part.exists() else 0}"
                                    f" bytes kept in {part}, run it again to resume") from None
            time.sleep(min(0.2 * attempts, 2.0))
            continue
        break
    digest = h.hexdigest() if part.exists() else hashlib.sha256().hexdigest()
    expected = sha256 or sha256_prefix
    if expected and not digest.startswith(expected.lower()):
        part.unlink(missing_ok=True)
        raise HashMismatch(f"{dest.name}: sha256 {digest} does not match the expected {expected}; "
                           f"the download was deleted (wrong file or corrupted transfer)")
    if not part.exists():                   # empty body
        part.write_bytes(b"")
    os.replace(part, dest)
    return digest
