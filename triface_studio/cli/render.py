"""``triface render T.safetensors --yaw 20 --pitch 5 --res 256 --out view.png [--semantic S]
[--depth D]``: render a saved tri-plane (bundled tier) from an orbit camera."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("render", help="render a saved tri-plane from a new view")
    p.add_argument("triplane", metavar="T.safetensors")
    p.add_argument("--yaw", type=float, default=0.0)
    p.add_argument("--pitch", type=float, default=0.0)
    p.add_argument("--res", type=int, default=256)
    p.add_argument("--out", required=True, metavar="view.png")
    p.add_argument("--semantic", metavar="sem.png", help="also write the colour-coded semantic map")
    p.add_argument("--depth", metavar="depth.png", help="also write a depth map (near = bright)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from triface_studio.core.asset import AssetError, TriPlaneAsset
    from triface_studio.core.cameras import Camera
    from triface_studio.core.images import save_image
    from triface_studio.core.semantics import colorize
    from triface_studio.models.bundled import BundledTier

    if not 8 <= args.res <= 4096:
        print("triface render: error: --res must be between 8 and 4096", file=sys.stderr)
        return 2
    try:
        asset = TriPlaneAsset.load(args.triplane)
    except AssetError as e:
        print(f"triface render: error: {e}", file=sys.stderr)
        return 2
    if asset.tier != "bundled":
        print(f"triface render: error: {args.triplane} is a {asset.tier!r} tri-plane; this command renders "
              "bundled ones", file=sys.stderr)
        return 2
    res = BundledTier("cpu").render(asset, Camera.orbit(args.yaw, args.pitch), args.res)
    rgb = (res.rgb[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    save_image(args.out, rgb)
    if args.semantic and res.semantics is not None:
        save_image(args.semantic, colorize(res.labels()[0].numpy().astype(np.uint8)))
    if args.depth:
        d, o = res.depth[0, 0].numpy(), res.opacity[0, 0].numpy()
        hit = o > 0.5
        img = np.zeros(d.shape, np.uint8)
        if hit.any():
            lo, hi = d[hit].min(), d[hit].max()
            img[hit] = (255 * (1 - (d[hit] - lo) / max(hi - lo, 1e-6)) * 0.8 + 51).astype(np.uint8)
        save_image(args.depth, img)
    print(f"{args.out}: {args.res}px at yaw {args.yaw:g} pitch {args.pitch:g}")
    return 0
