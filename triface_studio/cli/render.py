"""``triface render T.safetensors --yaw 20 --pitch 5 --res 256 --out view.png [--semantic S]
[--depth D]``: render a saved tri-plane (bundled tier) from an orbit camera.  Every output path
is checked before the render and all of them are written only after it succeeded."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("render", help="render a saved tri-plane from a new view")
    p.add_argument("triplane", metavar="T.safetensors")
    p.add_argument("--yaw", type=float, default=0.0, help="degrees, -180 to 180 (default 0)")
    p.add_argument("--pitch", type=float, default=0.0, help="degrees, -85 to 85 (default 0)")
    p.add_argument("--res", type=int, default=256, help="image size in pixels, 16 to 2048 (default 256)")
    p.add_argument("--out", required=True, metavar="view.png")
    p.add_argument("--semantic", metavar="sem.png", help="also write the colour-coded semantic map")
    p.add_argument("--depth", metavar="depth.png", help="also write a depth map (near = bright)")
    p.set_defaults(func=run)


def _depth_image(res):
    import numpy as np

    d, o = res.depth[0, 0].numpy(), res.opacity[0, 0].numpy()
    hit = o > 0.5
    img = np.zeros(d.shape, np.uint8)
    if hit.any():
        lo, hi = d[hit].min(), d[hit].max()
        img[hit] = (255 * (1 - (d[hit] - lo) / max(hi - lo, 1e-6)) * 0.8 + 51).astype(np.uint8)
    return img


def run(args) -> int:
    import numpy as np

    from triface_studio.core.asset import TriPlaneAsset
    from triface_studio.core.cameras import Camera
    from triface_studio.core.images import check_output_file, save_image
    from triface_studio.core.semantics import colorize
    from triface_studio.models.bundled import CHANNELS, BundledTier
    from triface_studio.pipeline.requests import check_float, check_int

    from .main import CommandError

    res_px = check_int(args.res, "--res", "view_resolution")
    yaw, pitch = check_float(args.yaw, "--yaw", "yaw"), check_float(args.pitch, "--pitch", "pitch")
    outputs = {"--out": args.out, "--semantic": args.semantic, "--depth": args.depth}
    outputs = {k: check_output_file(v, k) for k, v in outputs.items() if v}
    if len({str(p.absolute()) for p in outputs.values()}) < len(outputs):
        raise CommandError("--out, --semantic and --depth must name different files")
    asset = TriPlaneAsset.load(args.triplane)               # AssetError (a ValueError) -> message
    if asset.tier != "bundled":
        raise CommandError(f"{args.triplane} is a {asset.tier!r} tri-plane; this command renders bundled ones")
    if asset.planes.shape[2] != CHANNELS:
        raise CommandError(f"{args.triplane}: planes have {asset.planes.shape[2]} channels; the bundled "
                           f"tier's have {CHANNELS}")
    res = BundledTier("cpu").render(asset, Camera.orbit(yaw, pitch), res_px)
    images = {"--out": (res.rgb[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)}
    if args.semantic:
        if res.semantics is None:
            raise CommandError("this tri-plane renders no semantics; drop --semantic")
        images["--semantic"] = colorize(res.labels()[0].numpy().astype(np.uint8))
    if args.depth:
        images["--depth"] = _depth_image(res)
    for flag, img in images.items():
        save_image(outputs[flag], img)
    print(f"{args.out}: {res_px}px at yaw {yaw:g} pitch {pitch:g}")
    return 0
