"""``triface encode IMAGE --out T.safetensors``: lift a portrait into a tri-plane (bundled tier)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("encode", help="lift a portrait into a canonical tri-plane (.safetensors)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="T.safetensors")
    p.add_argument("--face-index", type=int, default=None, help="which face (0 = largest)")
    p.set_defaults(func=run)


def run(args) -> int:
    from triface_studio.core.images import ImageError, load_image
    from triface_studio.models.bundled import BundledTier
    from triface_studio.models.face import FaceAnalyzer, NoFaceError

    try:
        img = load_image(args.image)
        fa = FaceAnalyzer("cpu").analyze(img, name=str(args.image), parse=True, face_index=args.face_index)
    except (ImageError, NoFaceError, ValueError, OSError) as e:
        print(f"triface encode: error: {e}", file=sys.stderr)
        return 2
    for note in fa.notes:
        print(f"{args.image}: {note}", file=sys.stderr)
    asset = BundledTier("cpu").encode(fa)
    asset.save(args.out)
    print(f"{args.out}: tri-plane {asset.resolution}px x {asset.planes.shape[2]} channels, "
          f"yaw {fa.pose[0]:.1f} pitch {fa.pose[1]:.1f}")
    return 0
