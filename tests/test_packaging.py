"""Packaging: the PyInstaller spec's data exists and its entry point runs; the desktop entry is
valid; the sdist and the wheel built from pyproject.toml carry resources/ and the licences, and an
installed wheel finds its resources."""

from __future__ import annotations

import configparser
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"


def _bundle_data():
    spec = importlib.util.spec_from_file_location("bundle_data", PACKAGING / "bundle_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_data_path_of_the_spec_exists():
    bd = _bundle_data()
    pairs = bd.project_datas(ROOT)                       # raises on any missing source
    assert len(pairs) == len(bd.PROJECT_DATA)
    for src, dest in pairs:
        assert Path(src).exists() and Path(src).resolve().is_relative_to(ROOT)
        assert not Path(dest).is_absolute() and ".." not in Path(dest).parts
    assert dict(bd.PROJECT_DATA)["resources"] == "resources"      # where triface_studio.resources looks
    assert {"LICENSE", "NOTICE", "THIRD_PARTY_LICENSES"} <= {s for s, _ in bd.PROJECT_DATA}
    assert (ROOT / bd.ENTRY_SCRIPT).is_file() and (ROOT / bd.ICON_PNG).is_file()
    spec_text = (PACKAGING / "triface-studio.spec").read_text()
    compile(spec_text, "triface-studio.spec", "exec")    # valid Python
    assert "bundle_data" in spec_text and "project_datas" in spec_text and "COLLECT" in spec_text


def test_missing_bundle_data_is_reported(tmp_path):
    bd = _bundle_data()
    with pytest.raises(FileNotFoundError, match="resources"):
        bd.project_datas(tmp_path)
    assert bd.project_datas(tmp_path, allow_missing=True) == []


def test_bundle_drops_only_unused_torch_files():
    bd = _bundle_data()
    assert not bd.keep_in_bundle("torch/test/Dict_test") and not bd.keep_in_bundle("torch/bin/protoc")
    assert bd.keep_in_bundle("torch/bin/torch_shm_manager") and bd.keep_in_bundle("torch/lib/libtorch_cpu.so")
    assert bd.keep_in_bundle("resources/models/face/face_landmark.tflite")


def test_hidden_imports_and_metadata_are_available():
    bd = _bundle_data()
    for name in bd.HIDDEN_IMPORTS:
        importlib.import_module(name)
    for dist in ("triface-studio", "torch", "diffusers", "safetensors", "numpy"):
        assert dist in bd.METADATA_PACKAGES
        importlib.metadata.version(dist)


def test_gui_entry_point_imports_or_the_launcher_says_why():
    target = "triface_studio.qt.app"                      # [project.gui-scripts] triface-studio
    assert f'triface-studio = "{target}:main"' in (ROOT / "pyproject.toml").read_text()
    if importlib.util.find_spec(target) is not None:
        assert callable(importlib.import_module(target).main)
    else:                                                  # app not written yet: a message, not a traceback
        out = subprocess.run([sys.executable, str(PACKAGING / "triface_studio_launcher.py")], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert out.returncode == 2 and "not available" in out.stderr and "Traceback" not in out.stderr


def test_self_test_reports_on_the_pieces_a_frozen_build_needs():
    out = subprocess.run([sys.executable, str(PACKAGING / "triface_studio_launcher.py"), "--self-test"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    doc = json.loads(out.stdout)
    assert out.returncode == (0 if doc["ok"] else 1)
    assert doc["qt_platform"] == "offscreen" and Path(doc["resources"]) == ROOT / "resources"
    assert set(doc["bundled_models"]) == {s.name for s in _registry().REGISTRY if s.bundled}
    assert doc["gui_module"] == (importlib.util.find_spec("triface_studio.qt.app") is not None)


def _registry():
    from triface_studio.models import registry

    return registry


def test_launcher_runs_version_and_cli():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    launcher = str(PACKAGING / "triface_studio_launcher.py")
    out = subprocess.run([sys.executable, launcher, "--version"], capture_output=True, text=True, env=env,
                         timeout=120)
    from triface_studio import __version__

    assert out.returncode == 0 and out.stdout.strip() == f"triface-studio {__version__}"
    out = subprocess.run([sys.executable, launcher, "--cli", "models", "list", "--json"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert {m["name"] for m in json.loads(out.stdout)["models"]} >= {"face-detector", "eg3d-ffhq512-128"}


def test_desktop_entry():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(PACKAGING / "triface-studio.desktop")
    e = cp["Desktop Entry"]
    assert e["Type"] == "Application" and e["Name"] == "TriFace Studio" and e["Terminal"] == "false"
    assert e["Exec"].split()[0] == "triface-studio"          # the gui-script of pyproject / the bundle
    assert (ROOT / "resources" / "icons" / f"{e['Icon']}.svg").is_file()
    assert e["Categories"].endswith(";") and "image/jpeg" in e["MimeType"]


def _copy_source(dst: Path) -> None:
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "NOTICE", "THIRD_PARTY_LICENSES"):
        shutil.copy2(ROOT / name, dst / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("triface_studio", "resources", "packaging"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)


def test_sdist_and_wheel_carry_resources_and_an_installed_wheel_finds_them(tmp_path):
    src, dist = tmp_path / "src", tmp_path / "dist"
    src.mkdir()
    _copy_source(src)
    # sdist first, then the wheel built from the unpacked sdist (what `python -m build` does)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")

    shipped = sorted(str(p.relative_to(ROOT / "resources")) for p in (ROOT / "resources").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    assert "icons/triface-studio.svg" in shipped
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in shipped if f"triface_studio/_resources/{f}" not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names)
    assert any(n.endswith("dist-info/licenses/NOTICE") for n in names)
    assert any(n.endswith("dist-info/licenses/THIRD_PARTY_LICENSES") for n in names)
    assert "triface_studio/cli/models.py" in names and not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "triface = triface_studio.cli.main:main" in text and "triface-studio = triface_studio.qt.app:main" in text

    with tarfile.open(sdist) as tf:
        snames = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"setup.py", "LICENSE", "NOTICE", "THIRD_PARTY_LICENSES", "packaging/triface-studio.spec"} <= snames
    assert all(f"resources/{f}" in snames for f in shipped)

    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                           "--disable-pip-version-check", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = ("import triface_studio, triface_studio.resources as r; "
            "print(triface_studio.__file__); print(r.resources_dir()); print(r.icon_path())")
    env = {k: v for k, v in os.environ.items() if k != "TRIFACE_RESOURCES_DIR"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    pkg_file, res_dir, icon = out.stdout.split()
    assert Path(pkg_file).is_relative_to(site)
    assert Path(res_dir) == site / "triface_studio" / "_resources" and Path(icon).is_file()
