"""``triface encode IMAGE --out T.safetensors``: lift a portrait into a tri-plane (bundled tier)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("encode", help="lift a portrait into a canonical tri-plane (.safetensors)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="T.safetensors", help="the tri-plane file to write")
    p.add_argument("--face-index", type=int, default=None, help="which face (0 = largest)")
    p.set_defaults(func=run)


def run(args) -> int:
    from triface_studio.core.images import check_output_file, load_image
    from triface_studio.models.bundled import BundledTier
    from triface_studio.models.face import FaceAnalyzer
    from triface_studio.pipeline.requests import check_int

    out = check_output_file(args.out, "--out")               # before the work (a ValueError -> message)
    face_index = None if args.face_index is None else check_int(args.face_index, "--face-index", "face_index")
    img = load_image(args.image)
    fa = FaceAnalyzer("cpu").analyze(img, name=str(args.image), parse=True, face_index=face_index)
    for note in fa.notes:
        print(f"{args.image}: {note}", file=sys.stderr)
    asset = BundledTier("cpu").encode(fa)
    asset.save(out)
    print(f"{args.out}: tri-plane {asset.resolution}px x {asset.planes.shape[2]} channels, "
          f"yaw {fa.pose[0]:.1f} pitch {fa.pose[1]:.1f}")
    return 0
