"""The model registry: complete entries, bundled files that match their pins, imports that are
all-or-nothing, and the `triface models list|verify|import|remove` commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from triface_studio import resources
from triface_studio.cli import main as cli
from triface_studio.models import registry

ROOT = Path(__file__).resolve().parents[1]


def test_entries_are_complete_and_unique():
    names = [s.name for s in registry.REGISTRY]
    assert len(names) == len(set(names))
    for s in registry.REGISTRY:
        assert s.tier in ("bundled", "neural")
        assert s.purpose and s.adds and s.licence and s.licence_text and s.source_url and s.files
        for f in s.files:
            assert not os.path.isabs(f.name) and ".." not in Path(f.name).parts
            if f.sha256:
                assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
    for needed in ("eg3d-ffhq512-128", "eg3d-ffhqrebalanced512-128", "triplanenet-v1", "triplanenet-v2",
                   "ddpm-celebahq-256", "lpips-vgg", "inception-fid", "bisenet-79999", "face-parser"):
        assert needed in names
    with pytest.raises(KeyError, match="known models"):
        registry.get("no-such-model")


def test_every_shipped_model_file_is_registered_and_matches_its_pin():
    """A file in resources/models that no entry claims would ship without licence information."""
    claimed = {(s.folder, f.name): f for s in registry.REGISTRY if s.bundled for f in s.files}
    models = ROOT / "resources" / "models"
    shipped = [p for p in models.rglob("*") if p.is_file()] if models.is_dir() else []
    for p in shipped:
        rel = p.relative_to(ROOT / "resources")
        if p.suffix.lower() in (".md", ".txt", ".json", ".py"):   # model cards, configs
            continue
        key = (str(rel.parent), rel.name)
        assert key in claimed, f"{rel} is shipped but not in the model registry"
        f = claimed[key]
        if f.size is not None:
            assert p.stat().st_size == f.size, rel
        if f.sha256:
            assert registry.sha256_file(p) == f.sha256, f"{rel}: pinned sha256 is stale"
    # and every present bundled model verifies cleanly
    for s in registry.REGISTRY:
        st = registry.check(s, hashes=True)
        if s.bundled and st.installed:
            assert st.ok, [c.message for c in st.files]


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIFACE_DATA_DIR", str(tmp_path / "d"))
    assert registry.user_models_dir() == tmp_path / "d" / "models"
    assert registry.model_dir("lpips-vgg") == tmp_path / "d" / "models" / "lpips-vgg"
    monkeypatch.delenv("TRIFACE_DATA_DIR")
    assert "triface-studio" in str(registry.data_dir())     # platformdirs' per-user folder


def test_resources_accessor(tmp_path, monkeypatch):
    assert resources.resources_dir() == ROOT / "resources"
    assert resources.icon_path().is_file()
    with pytest.raises(FileNotFoundError, match="no-such.file"):
        resources.resource_path("no-such.file")
    (tmp_path / "icons").mkdir()
    monkeypatch.setenv("TRIFACE_RESOURCES_DIR", str(tmp_path))
    assert resources.resources_dir() == tmp_path
    assert resources.sample_images() == []


def _tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(4, 3, generator=g), "b": torch.zeros(4)}


def test_import_safetensors_then_verify_detects_corruption(tmp_path, capsys):
    src = tmp_path / "79999_iter.safetensors"
    save_file(_tensors(), str(src))
    assert cli.main(["models", "import", str(src)]) == 0          # name guessed from the file name
    assert "imported bisenet-79999" in capsys.readouterr().out
    folder = registry.find_model("bisenet-79999")
    assert folder is not None and (folder / src.name).read_bytes() == src.read_bytes()
    man = registry.read_manifest(folder)
    assert man["files"][src.name]["sha256"] == registry.sha256_file(src)
    st = registry.check("bisenet-79999", hashes=True)
    assert st.state == "installed" and st.ok

    assert cli.main(["models", "verify"]) in (0, 1)      # bundled files may be absent in a bare checkout
    assert "bisenet-79999: 79999_iter.safetensors  sha256 ok" in capsys.readouterr().out
    (folder / src.name).write_bytes(src.read_bytes()[:-4] + b"\0\0\0\0")
    assert registry.check("bisenet-79999", hashes=True).state == "corrupt"
    assert cli.main(["models", "verify", "bisenet-79999"]) == 1

    doc = _list_json(capsys)
    row = next(m for m in doc["models"] if m["name"] == "bisenet-79999")
    assert row["installed"] and row["noncommercial"] and row["folder"] == str(folder)


def _list_json(capsys) -> dict:
    capsys.readouterr()
    assert cli.main(["models", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_bad_imports_leave_nothing_behind(tmp_path, capsys):
    bad = tmp_path / "79999_iter.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    assert cli.main(["models", "import", str(bad)]) == 2
    assert "not a valid safetensors file" in capsys.readouterr().err

    pkl = tmp_path / "ffhq512-128.pkl"          # not a pickle at all
    pkl.write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="ffhq512-128.pkl"):
        registry.import_model(pkl)

    unknown = tmp_path / "weights.safetensors"
    save_file(_tensors(), str(unknown))
    with pytest.raises(ValueError, match="--name"):
        registry.import_model(unknown)
    with pytest.raises(ValueError, match="bundled"):
        registry.import_model(unknown, name="face-parser")

    root = registry.user_models_dir()
    leftovers = [p for p in root.rglob("*")] if root.exists() else []
    assert leftovers == [], leftovers
    assert cli.main(["models", "import", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_import_diffusers_folder_and_refuse_pickles_in_folders(tmp_path):
    d = tmp_path / "ddpm"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 8}))
    (d / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler"}))
    save_file(_tensors(1), str(d / "diffusion_pytorch_model.safetensors"))
    res = registry.import_model(d)
    assert res.spec.name == "ddpm-celebahq-256" and len(res.files) == 3
    assert registry.find_model("ddpm-celebahq-256") == res.folder
    assert registry.check("ddpm-celebahq-256", hashes=True).ok

    (d / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="diffusion_pytorch_model.bin"):
        registry.import_model(d, name="ddpm-celebahq-256")
    assert not (res.folder / "diffusion_pytorch_model.bin").exists()


def test_remove_rules(tmp_path, capsys):
    with pytest.raises(ValueError, match="bundled"):
        registry.remove("face-detector")
    assert cli.main(["models", "remove", "lpips-vgg"]) == 2
    assert "not installed" in capsys.readouterr().err
    src = tmp_path / "vgg.safetensors"
    save_file(_tensors(), str(src))
    folder = registry.import_model(src, name="lpips-vgg").folder
    assert cli.main(["models", "remove", "lpips-vgg"]) == 0 and not folder.exists()


def test_list_describes_missing_models(capsys):
    assert cli.main(["models", "list", "--licences"]) == 0
    out = capsys.readouterr().out
    for s in registry.REGISTRY:
        assert s.name in out and s.licence_text in out
    msg = registry.describe_missing("eg3d-ffhq512-128")
    assert "neural tier" in msg and "Non-commercial" in msg and "Import" in msg
    with pytest.raises(registry.MissingModelError, match="neural tier") as e:
        registry.require("eg3d-ffhq512-128")
    assert e.value.model == "eg3d-ffhq512-128" and isinstance(e.value, FileNotFoundError)


def test_converted_import_uses_the_converters_config(tmp_path, monkeypatch):
    """A .pt/.pkl goes through the checkpoint converter; its config names the model when the file
    name does not, and the converted files (not the original) are what gets installed."""
    calls = []

    def fake_convert(src, out_dir):
        calls.append(Path(src))
        out_dir = Path(out_dir)
        save_file(_tensors(2), str(out_dir / "checkpoint.safetensors"))
        (out_dir / "checkpoint.json").write_text(json.dumps({"kind": "triplanenet"}))
        return out_dir / "checkpoint.safetensors", {"kind": "triplanenet", "opts": {"version": "v2"}}

    monkeypatch.setattr(registry, "_converter", lambda: fake_convert)
    src = tmp_path / "best_model.pt"
    src.write_bytes(b"whatever the converter reads")
    res = registry.import_model(src)
    assert calls == [src] and res.spec.name == "triplanenet-v2"
    assert res.files == ["checkpoint.json", "checkpoint.safetensors"] and "converted from best_model.pt" in res.notes
    assert registry.find_model("triplanenet-v2") == res.folder
    st = registry.check("triplanenet-v2", hashes=True)
    assert st.state == "installed" and [c.name for c in st.files] == res.files
    assert registry.read_manifest(res.folder)["config"]["kind"] == "triplanenet"

    def failing_convert(src, out_dir):
        (Path(out_dir) / "half.safetensors").write_bytes(b"x")
        raise RuntimeError("unexpected opcode")

    monkeypatch.setattr(registry, "_converter", lambda: failing_convert)
    with pytest.raises(ValueError, match="unexpected opcode"):
        registry.import_model(tmp_path / "best_model.pt", name="eg3d-ffhq512-128")
    assert registry.find_model("eg3d-ffhq512-128") is None
    assert not [p for p in registry.user_models_dir().iterdir() if p.name.startswith(".import-")]


def test_import_a_trained_score_folder_skips_training_state(tmp_path):
    out = tmp_path / "score-run"
    (out / "unet").mkdir(parents=True)
    (out / "scheduler").mkdir()
    (out / "unet" / "config.json").write_text("{}")
    save_file(_tensors(3), str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    (out / "scheduler" / "scheduler_config.json").write_text("{}")
    (out / "train_state.pt").write_bytes(b"\x80\x04 pickled optimiser")
    (out / "log.jsonl").write_text("{}\n")
    res = registry.import_model(out, name="triface-score")
    assert res.files == ["scheduler/scheduler_config.json", "unet/config.json",
                         "unet/diffusion_pytorch_model.safetensors"]
    assert any("train_state.pt" in n for n in res.notes)
    assert registry.check("triface-score").state == "installed"


def test_every_shipped_third_party_file_is_in_the_licence_files():
    """Shipping a model or a sample portrait means naming it, with its licence, in
    THIRD_PARTY_LICENSES (and the parser's non-commercial terms in NOTICE)."""
    third = (ROOT / "THIRD_PARTY_LICENSES").read_text()
    notice = (ROOT / "NOTICE").read_text()
    for s in registry.REGISTRY:
        if s.bundled:
            for f in s.files:
                assert f.name in third, f"{f.name} is not in THIRD_PARTY_LICENSES"
    samples = ROOT / "resources" / "samples"
    for p in (sorted(samples.rglob("*")) if samples.is_dir() else []):
        if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
            assert p.name in third, f"sample {p.name}: state its source and licence in THIRD_PARTY_LICENSES"
    assert "NON-COMMERCIAL" in notice and "Apache License" in notice and "Apache License" in third
    assert "LGPL" in third and "END OF TERMS AND CONDITIONS" in third


def test_damaged_or_stale_manifests_do_not_break_listing(tmp_path):
    src = tmp_path / "decoders.safetensors"
    save_file(_tensors(), str(src))
    folder = registry.import_model(src).folder           # guessed: triface-decoders
    assert registry.find_model("triface-decoders") == folder
    (folder / registry.MANIFEST).write_text("{not json")
    assert registry.check("triface-decoders").state == "installed"     # registered file name still there
    (folder / "decoders.safetensors").unlink()
    assert registry.find_model("triface-decoders") is None
    assert {s.spec.name: s.state for s in registry.status_all()}["triface-decoders"] == "missing"
