"""``triface edit``: one reference-based edit from the command line, with its exports."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# the choices, defaults, limits and checks of an edit are the request's (a light module: no torch)
from triface_studio.pipeline.requests import (DEFAULT_MESH_RESOLUTION, DEFAULT_PITCH_RANGE, DEFAULT_VIEW_RESOLUTION,
                                              DEFAULT_YAW_RANGE, MASK_MODES, REFINERS, TIERS, EditRequest,
                                              ReferenceSpec, RefineSettings, check_background, check_choice,
                                              check_device, check_float, check_int, validate_exports,
                                              validate_request)

#: orbit views ``triface edit`` renders unless told (the library's exports default to none)
DEFAULT_VIEWS = 8


def register(sub) -> None:
    refine = RefineSettings()
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
    p.add_argument("--bare-mask", metavar="MASK.png",
                   help="a mask painted on the identity's 512 px crop: where the identity's old hair is not "
                        "covered by the new hair, its white parts become bare skin (by default new hair grows "
                        "there on the scalp)")
    p.add_argument("--mask-mode", action="append", default=[], choices=MASK_MODES,
                   help="how the matching --mask refines the predicted region "
                        f"(default: {ReferenceSpec.mask_mode})")
    p.add_argument("--out", help="output folder; it belongs to the edit: it is replaced as a whole, and one "
                                 "holding files another edit.json does not list is refused without --overwrite")
    p.add_argument("--from", dest="from_json", metavar="EDIT.json",
                   help="re-run the edit an edit.json or a TriFace Studio session (.triface) describes")
    p.add_argument("--views", type=int, default=None,
                   help=f"number of orbit views to render (default {DEFAULT_VIEWS})")
    p.add_argument("--yaw-range", type=float, default=None,
                   help=f"orbit yaw amplitude in degrees (default {DEFAULT_YAW_RANGE:g})")
    p.add_argument("--pitch-range", type=float, default=None,
                   help=f"orbit pitch amplitude in degrees (default {DEFAULT_PITCH_RANGE:g})")
    p.add_argument("--view-resolution", type=int, default=None,
                   help=f"orbit view size in pixels (default {DEFAULT_VIEW_RESOLUTION})")
    p.add_argument("--mesh", action="store_true", default=None, help="also write mesh.ply (marching cubes)")
    vid = p.add_mutually_exclusive_group()
    vid.add_argument("--gif", action="store_true", help="also write orbit.gif")
    vid.add_argument("--mp4", action="store_true", help="also write orbit.mp4")
    p.add_argument("--refiner", choices=REFINERS, default=None)
    p.add_argument("--score-model", metavar="DIR", default=None, help="diffusers score model folder for sdedit")
    p.add_argument("--t0", type=float, default=None, help=f"SDEdit noise level (default {refine.t0:g})")
    p.add_argument("--steps", type=int, default=None, help=f"SDEdit denoising steps (default {refine.steps})")
    p.add_argument("--repeats", type=int, default=None, help=f"SDEdit repeats (default {refine.repeats})")
    p.add_argument("--dilate-radius", type=int, default=None,
                   help=f"M_sde dilation radius in px (default {refine.dilate_radius})")
    p.add_argument("--blur-sigma", type=float, default=None,
                   help=f"M_sde blur sigma in px (default {refine.blur_sigma:g})")
    p.add_argument("--background", default=None,
                   help="identity (default), reference, transparent or a colour R,G,B")
    p.add_argument("--device", default=None, help=f"cpu or cuda (default {EditRequest.device})")
    p.add_argument("--tier", choices=TIERS, default=None)
    p.add_argument("--checkpoints", default=None, metavar="DIR", help="checkpoint folder of the neural tier (default: your models folder)")
    p.add_argument("--seed", type=int, default=None, help=f"random seed, 0 to 2^32-1 (default {EditRequest.seed})")
    p.add_argument("--face-index", type=int, default=None,
                   help="which face of the identity photo to edit (0 = largest, the default)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that holds files the earlier edit did not write")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def _pick(value, saved, default, flag: str, field: str):
    """The CLI's value, else edit.json's, else the default -> (value, the name to blame for it)."""
    if value is not None:
        return value, flag
    if saved is not None:
        return saved, f"edit.json {field}"
    return default, flag


def _references(args, saved: dict) -> list[dict]:
    """The references as dicts (image, attributes, mask, mask_mode, name), from the command line
    (each --attribute, --mask and --mask-mode pairs with the --reference at its position) or
    from edit.json."""
    from .main import CommandError

    if not args.reference:
        if args.attribute or args.mask or args.mask_mode:
            raise CommandError("--attribute, --mask and --mask-mode pair with a --reference; give the "
                               "references too (they replace those of edit.json)")
        return list(saved.get("references") or [])
    n = len(args.reference)
    if len(args.attribute) != n:
        raise CommandError(f"give one --attribute per --reference ({n} references, "
                           f"{len(args.attribute)} attributes)")
    for flag, given in (("--mask", args.mask), ("--mask-mode", args.mask_mode)):
        if len(given) > n:
            raise CommandError(f"{len(given)} {flag} values for {n} reference(s): each {flag} pairs with "
                               f"the --reference at its position")
    return [{"image": r, "attributes": [a.strip() for a in attr.split(",") if a.strip()],
             "mask": args.mask[i] if i < len(args.mask) else None,
             "mask_mode": args.mask_mode[i] if i < len(args.mask_mode) else ReferenceSpec.mask_mode, "name": ""}
            for i, (r, attr) in enumerate(zip(args.reference, args.attribute))]


def _read_edit_json(path: str) -> tuple[dict, dict]:
    """edit.json, or a session saved by the app (the same "request" object; its masks come as
    arrays) -> (request dict, exports dict)."""
    import zipfile

    from triface_studio.pipeline.requests import decode_edit_json

    from .main import CommandError

    if Path(path).is_dir() or zipfile.is_zipfile(path):
        from triface_studio.document import EditSetup, SetupError

        try:
            return _session_request(EditSetup.load(path, with_result=False)), {}
        except SetupError as e:
            raise CommandError(str(e)) from None
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CommandError(f"{path}: not a readable edit.json ({getattr(e, 'strerror', None) or e})") from None
    return decode_edit_json(doc, path)


def _session_request(setup) -> dict:
    """A session's request in edit.json's terms (absolute paths), with its painted masks as arrays."""
    req = setup.to_json()["request"]

    def painted(mask):
        return mask if mask is not None and mask.any() else None
    for r, ref in zip(req["references"], setup.references):
        r["mask"] = painted(ref.mask)
    req["identity_mask"], req["bare_mask"] = painted(setup.identity_mask), painted(setup.bare_mask)
    return req


def _check_photo(role: str, path: str) -> None:
    """The photo's header, before any work: it exists, is an image and within the pixel limit."""
    from triface_studio.core.images import ImageError, check_image_file

    from .main import CommandError

    try:
        check_image_file(path)
    except ImageError as e:
        raise CommandError(f"{role} {e}") from None


def _load_mask(path):
    """A mask file (or a session's painted mask, already an array) -> float32 array."""
    import numpy as np

    from triface_studio.core.images import ImageError, load_mask

    from .main import CommandError

    if isinstance(path, np.ndarray):
        return path
    try:
        return load_mask(path)
    except ImageError as e:
        raise CommandError(str(e)) from None


def build_request(args):
    """Arguments (and an optional edit.json) -> (EditRequest, export options, input mask paths).

    Every value goes through the same checks (``pipeline.requests``: ``LIMITS``, devices,
    backgrounds) whether it came from the command line or from edit.json; a bad one is refused
    naming the flag or the edit.json field, before any work."""
    from .main import CommandError

    saved, exp = _read_edit_json(args.from_json) if args.from_json else ({}, {})
    identity = args.identity or saved.get("identity")
    if not identity:
        raise CommandError("--identity is required (or --from EDIT.json)")
    refs = _references(args, saved)
    if not refs:
        raise CommandError("give at least one --reference REF --attribute NAME")
    for role, path in [("identity", identity)] + [(f"reference {i + 1}", r.get("image")) for i, r in enumerate(refs)]:
        if path:
            _check_photo(role, path)
    specs, mask_paths = [], []
    for i, r in enumerate(refs):
        if not r.get("image"):
            raise CommandError(f"reference {i + 1} has no image path")
        if not r.get("attributes"):
            raise CommandError(f"reference {i + 1} has no attribute to take (e.g. --attribute hair)")
        mode = check_choice(r.get("mask_mode") or ReferenceSpec.mask_mode, f"the mask mode of reference {i + 1}",
                            MASK_MODES)
        given = r.get("mask")
        mask = _load_mask(given) if given is not None else None
        mask_paths.append(str(Path(given).absolute()) if isinstance(given, str) else None)
        specs.append(ReferenceSpec(r["image"], tuple(r["attributes"]), name=r.get("name") or "",
                                   user_mask=mask, mask_mode=mode))
    id_mask_path = args.identity_mask or saved.get("identity_mask")
    id_mask = _load_mask(id_mask_path) if id_mask_path is not None else None
    id_mask_path = str(Path(id_mask_path).absolute()) if isinstance(id_mask_path, str) else None
    bare_path = args.bare_mask or saved.get("bare_mask")
    bare = _load_mask(bare_path) if bare_path is not None else None
    bare_path = str(Path(bare_path).absolute()) if isinstance(bare_path, str) else None
    rs = saved.get("refine", {})
    d = RefineSettings()                    # the defaults

    def num(check, attr, flag, field, src, default, key):
        return check(*_pick(getattr(args, attr, None) if attr else None, src.get(key), default, flag,
                            f"{field}.{key}" if field else key), key)

    refine = RefineSettings(
        refiner=check_choice(*_pick(args.refiner, rs.get("refiner"), d.refiner, "--refiner", "refine.refiner"),
                             REFINERS),
        dilate_radius=num(check_int, "dilate_radius", "--dilate-radius", "refine", rs, d.dilate_radius,
                          "dilate_radius"),
        blur_sigma=num(check_float, "blur_sigma", "--blur-sigma", "refine", rs, d.blur_sigma, "blur_sigma"),
        t0=num(check_float, "t0", "--t0", "refine", rs, d.t0, "t0"),
        steps=num(check_int, "steps", "--steps", "refine", rs, d.steps, "steps"),
        repeats=num(check_int, "repeats", "--repeats", "refine", rs, d.repeats, "repeats"),
        score_model=_pick(args.score_model, rs.get("score_model"), d.score_model, "", "")[0])
    bg = check_background(*_pick(args.background, saved.get("background"), EditRequest.background, "--background",
                                 "request.background"))
    face_index, face_flag = _pick(args.face_index, saved.get("identity_face_index"), None, "--face-index",
                                  "request.identity_face_index")
    req = EditRequest(identity=identity, references=specs, refine=refine, background=bg, identity_mask=id_mask,
                      bare_mask=bare,
                      seed=num(check_int, "seed", "--seed", "request", saved, EditRequest.seed, "seed"),
                      device=check_device(*_pick(args.device, saved.get("device"), EditRequest.device, "--device",
                                                 "request.device")),
                      tier=check_choice(*_pick(args.tier, saved.get("tier"), EditRequest.tier, "--tier",
                                               "request.tier"), TIERS),
                      render_resolution=num(check_int, None, "", "request", saved, EditRequest.render_resolution,
                                            "render_resolution"),
                      identity_face_index=None if face_index is None else check_int(face_index, face_flag,
                                                                                    "face_index"))
    validate_request(req)
    video = "gif" if args.gif else "mp4" if args.mp4 else exp.get("video")
    exports = dict(views=num(check_int, "views", "--views", "exports", exp, DEFAULT_VIEWS, "views"),
                   yaw_range=num(check_float, "yaw_range", "--yaw-range", "exports", exp, DEFAULT_YAW_RANGE, "yaw_range"),
                   pitch_range=num(check_float, "pitch_range", "--pitch-range", "exports", exp, DEFAULT_PITCH_RANGE,
                                   "pitch_range"),
                   view_resolution=num(check_int, "view_resolution", "--view-resolution", "exports", exp,
                                       DEFAULT_VIEW_RESOLUTION, "view_resolution"),
                   mesh=bool(_pick(args.mesh, exp.get("mesh"), False, "", "")[0]),
                   mesh_resolution=num(check_int, None, "", "exports", exp, DEFAULT_MESH_RESOLUTION,
                                       "mesh_resolution"),
                   orbit=exp.get("orbit") or "turntable", video=video)
    exports = validate_exports(**exports)
    if exports["video"] and not exports["views"]:
        raise CommandError(f"--{exports['video']} needs views (--views N with N > 0)")
    return req, exports, {"masks": mask_paths, "identity_mask": id_mask_path, "bare_mask": bare_path}


def _refuse_inputs_inside(out: Path, req, inputs: dict) -> None:
    """The output folder is replaced as a whole: an input inside it would be lost, so refuse."""
    from .main import CommandError

    paths = [req.identity, *(r.image for r in req.references), *inputs["masks"], inputs["identity_mask"],
             inputs["bare_mask"]]
    for p in paths:
        if isinstance(p, (str, Path)) and p and Path(os.path.realpath(p)).is_relative_to(out):
            raise CommandError(f"{p} is inside the output folder {out}, which the edit replaces as a whole; "
                               f"move it out or choose another --out")


def run(args) -> int:
    from triface_studio.pipeline import EditPipeline, EditError
    from triface_studio.pipeline.errors import Cancelled
    from triface_studio.pipeline.exports import check_output_dir, write_edit_outputs

    from .main import CommandError, native_stderr_silenced

    req, exports, inputs = build_request(args)
    out = args.out
    if not out:
        if args.from_json and Path(args.from_json).suffix == ".json":
            out = str(Path(args.from_json).absolute().parent)
        elif args.from_json:                # a session: an edit folder beside it
            src = Path(args.from_json).absolute()
            out = str(src.parent / f"{src.stem}_edit")
        else:
            raise CommandError("--out DIR is required")
    try:
        out = check_output_dir(out, overwrite=args.overwrite, owned=True)     # fail before any work
        _refuse_inputs_inside(out, req, inputs)
        pipe = EditPipeline(tier=req.tier, device=req.device, checkpoint_dir=args.checkpoints)
        last = [None]

        def progress(stage, fraction):
            if not args.quiet and stage != last[0]:
                last[0] = stage
                print(f"  {stage} ...", file=sys.stderr, flush=True)

        with native_stderr_silenced(args.quiet):
            result = pipe.run(req, progress=progress)
            files = write_edit_outputs(result, out, pipe, extra=inputs, progress=progress,
                                       overwrite=args.overwrite, **exports)
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
