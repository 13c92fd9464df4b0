"""``triface edit``: one reference-based edit from the command line, with its exports."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "edit", help="edit a portrait with attributes taken from reference portraits",
        description="Take attributes (hair, eyeglasses, ...) from reference portraits and put them on the "
                    "identity, in 3D: writes edited.png, edited_crop.png, coarse.png, semantic.png, labels.png, "
                    "mask_sde.png, views/, mesh.ply (--mesh) and edit.json into --out.")
    p.add_argument("--identity", help="the portrait to edit")
    p.add_argument("--reference", action="append", default=[], metavar="REF",
                   help="a reference portrait (repeatable; each pairs with the --attribute after it)")
    p.add_argument("--attribute", action="append", default=[], metavar="NAME",
                   help="attribute(s) to take from the matching reference, e.g. hair or hair,eyeglasses")
    p.add_argument("--mask", action="append", default=[], metavar="MASK.png",
                   help="a mask painted on the matching reference's 512 px crop (repeatable)")
    p.add_argument("--identity-mask", metavar="MASK.png",
                   help="a mask painted on the identity's 512 px crop: its white parts are protected "
                        "(kept exactly as in the identity)")
    p.add_argument("--mask-mode", action="append", default=[], choices=("replace", "add", "subtract"),
                   help="how the matching --mask refines the predicted region (default: add)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--from", dest="from_json", metavar="EDIT.json", help="re-run the edit an edit.json describes")
    p.add_argument("--views", type=int, default=None, help="number of orbit views to render (default 8)")
    p.add_argument("--yaw-range", type=float, default=None, help="orbit yaw amplitude in degrees (default 30)")
    p.add_argument("--pitch-range", type=float, default=None, help="orbit pitch amplitude in degrees (default 15)")
    p.add_argument("--view-resolution", type=int, default=None, help="orbit view size in pixels (default 256)")
    p.add_argument("--mesh", action="store_true", default=None, help="also write mesh.ply (marching cubes)")
    vid = p.add_mutually_exclusive_group()
    vid.add_argument("--gif", action="store_true", help="also write orbit.gif")
    vid.add_argument("--mp4", action="store_true", help="also write orbit.mp4")
    p.add_argument("--refiner", choices=("classical", "sdedit"), default=None)
    p.add_argument("--score-model", metavar="DIR", default=None, help="diffusers score model folder for sdedit")
    p.add_argument("--t0", type=float, default=None, help="SDEdit noise level (default 0.5)")
    p.add_argument("--steps", type=int, default=None, help="SDEdit denoising steps (default 50)")
    p.add_argument("--repeats", type=int, default=None, help="SDEdit repeats (default 1)")
    p.add_argument("--dilate-radius", type=int, default=None, help="M_sde dilation radius in px (default 9)")
    p.add_argument("--blur-sigma", type=float, default=None, help="M_sde blur sigma in px (default 4)")
    p.add_argument("--background", default=None,
                   help="identity (default), reference, transparent or a colour R,G,B")
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument("--tier", choices=("bundled", "neural"), default=None)
    p.add_argument("--checkpoints", default=None, metavar="DIR", help="checkpoint folder of the neural tier (default: your models folder)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def _pick(value, saved, default):
    if value is not None:
        return value
    if saved is not None:
        return saved
    return default


def _background(text):
    if text is None or isinstance(text, list):
        return tuple(text) if isinstance(text, list) else "identity"
    if text in ("identity", "reference", "transparent"):
        return text
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        from .main import CommandError

        raise CommandError(f"--background must be identity, reference, transparent or R,G,B, not {text!r}")
    return parts


def build_request(args):
    """Arguments (and an optional edit.json) -> (EditRequest, export options, input mask paths)."""
    from triface_studio.core.images import ImageError, load_mask
    from triface_studio.pipeline import EditRequest, ReferenceSpec, RefineSettings

    from .main import CommandError

    saved, exp = {}, {}
    if args.from_json:
        try:
            doc = json.loads(Path(args.from_json).read_text())
        except (OSError, ValueError) as e:
            raise CommandError(f"{args.from_json}: not a readable edit.json ({e})") from None
        if doc.get("format") != "triface-edit" or not isinstance(doc.get("request"), dict):
            raise CommandError(f"{args.from_json}: not an edit.json written by triface edit")
        saved, exp = doc["request"], doc.get("exports", {})

    identity = _pick(args.identity, saved.get("identity"), None)
    if not identity:
        raise CommandError("--identity is required (or --from EDIT.json)")
    if args.reference:
        if len(args.attribute) != len(args.reference):
            raise CommandError(f"give one --attribute per --reference ({len(args.reference)} references, "
                               f"{len(args.attribute)} attributes)")
        refs = [{"image": r, "attributes": [a.strip() for a in attr.split(",") if a.strip()],
                 "mask": args.mask[i] if i < len(args.mask) else None,
                 "mask_mode": args.mask_mode[i] if i < len(args.mask_mode) else "add", "name": ""}
                for i, (r, attr) in enumerate(zip(args.reference, args.attribute))]
    else:
        refs = saved.get("references") or []
    if not refs:
        raise CommandError("give at least one --reference REF --attribute NAME")
    specs, mask_paths = [], []
    for r in refs:
        if not r.get("image"):
            raise CommandError("edit.json lacks a reference image path")
        mask = None
        if r.get("mask"):
            try:
                mask = load_mask(r["mask"])
            except ImageError as e:
                raise CommandError(str(e)) from None
        mask_paths.append(str(Path(r["mask"]).absolute()) if r.get("mask") else None)
        specs.append(ReferenceSpec(r["image"], tuple(r["attributes"]), name=r.get("name") or "",
                                   user_mask=mask, mask_mode=r.get("mask_mode") or "add"))
    id_mask_path = _pick(getattr(args, "identity_mask", None), saved.get("identity_mask"), None)
    id_mask = None
    if id_mask_path:
        try:
            id_mask = load_mask(id_mask_path)
        except ImageError as e:
            raise CommandError(str(e)) from None
        id_mask_path = str(Path(id_mask_path).absolute())
    rs = saved.get("refine", {})
    refine = RefineSettings(
        refiner=_pick(args.refiner, rs.get("refiner"), "classical"),
        dilate_radius=int(_pick(args.dilate_radius, rs.get("dilate_radius"), 9)),
        blur_sigma=float(_pick(args.blur_sigma, rs.get("blur_sigma"), 4.0)),
        t0=float(_pick(args.t0, rs.get("t0"), 0.5)), steps=int(_pick(args.steps, rs.get("steps"), 50)),
        repeats=int(_pick(args.repeats, rs.get("repeats"), 1)),
        score_model=_pick(args.score_model, rs.get("score_model"), None))
    bg = _background(args.background) if args.background is not None else _background(saved.get("background"))
    req = EditRequest(identity=identity, references=specs, refine=refine, background=bg, identity_mask=id_mask,
                      seed=int(_pick(args.seed, saved.get("seed"), 0)),
                      device=_pick(args.device, saved.get("device"), "cpu"),
                      tier=_pick(args.tier, saved.get("tier"), "bundled"),
                      render_resolution=int(saved.get("render_resolution", 256)))
    video = "gif" if args.gif else "mp4" if args.mp4 else exp.get("video")
    exports = dict(views=int(_pick(args.views, exp.get("views"), 8)),
                   yaw_range=float(_pick(args.yaw_range, exp.get("yaw_range"), 30.0)),
                   pitch_range=float(_pick(args.pitch_range, exp.get("pitch_range"), 15.0)),
                   view_resolution=int(_pick(args.view_resolution, exp.get("view_resolution"), 256)),
                   mesh=bool(_pick(args.mesh, exp.get("mesh"), False)),
                   mesh_resolution=int(exp.get("mesh_resolution", 128)), video=video)
    return req, exports, {"masks": mask_paths, "identity_mask": id_mask_path}


def run(args) -> int:
    from triface_studio.pipeline import EditPipeline, EditError
    from triface_studio.pipeline.errors import Cancelled
    from triface_studio.pipeline.exports import check_output_dir, write_edit_outputs

    from .main import CommandError

    req, exports, inputs = build_request(args)
    out = args.out
    if not out:
        if args.from_json:
            out = str(Path(args.from_json).absolute().parent)
        else:
            raise CommandError("--out DIR is required")
    try:
        check_output_dir(out)              # fail before any work
        pipe = EditPipeline(tier=req.tier, device=req.device, checkpoint_dir=args.checkpoints)
        last = [None]

        def progress(stage, fraction):
            if not args.quiet and stage != last[0]:
                last[0] = stage
                print(f"  {stage} ...", file=sys.stderr, flush=True)

        result = pipe.run(req, progress=progress)
        files = write_edit_outputs(result, out, pipe, extra=inputs, progress=progress, **exports)
    except EditError as e:
        raise CommandError(str(e)) from None
    except Cancelled:
        raise KeyboardInterrupt from None
    if not args.quiet:
        for n in result.notes:
            print(f"note: {n}", file=sys.stderr)
        total = sum(v for k, v in result.timings.items())
        print(f"wrote {len(files)} files to {out} (edit {total:.2f} s)")
    return 0
