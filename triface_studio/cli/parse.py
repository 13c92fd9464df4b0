"""``triface parse IMAGE... --out DIR [--aligned] [--color] [--json] [--parser KIND]``: face analysis
and 19-class parsing of many photos in one run.  Writes DIR/NAME.png (class ids, CelebAMask-HQ
order, on the user's photo: same size as the input), DIR/NAME_crop.png (the aligned 512 crop),
with ``--aligned`` DIR/NAME_aligned.png (the class ids on that crop), with ``--color`` colour-coded
copies of each label map (NAME_color.png, NAME_aligned_color.png), with ``--json`` DIR/NAME.json
(landmarks, pose, camera, crop matrix, the parser used)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "parse", help="detect, align and parse faces in photos",
        description="Finds the face, aligns it to the canonical 512 px crop, labels the crop with the 19 "
                    "CelebAMask-HQ classes and writes, per photo: NAME.png, the class ids on YOUR PHOTO (same "
                    "width and height as the input; pixels the crop does not reach are background), and "
                    "NAME_crop.png, the aligned crop. --aligned adds NAME_aligned.png, the class ids on the "
                    "aligned crop (512 x 512, pixel for pixel over NAME_crop.png), which is what the edit "
                    "pipeline uses. Class ids: triface_studio/core/semantics.py (0 background, 1 skin, "
                    "13 hair, ...).")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--aligned", action="store_true",
                   help="also write NAME_aligned.png: the label map on the aligned 512 px crop (NAME_crop.png) "
                        "instead of on the photo")
    p.add_argument("--color", action="store_true",
                   help="also write colour-coded label maps (NAME_color.png; with --aligned NAME_aligned_color.png)")
    p.add_argument("--parser", default=None, choices=("auto", "fused", "bisenet", "shipped"),
                   help="auto (default, or $TRIFACE_PARSER): the bundled parser fused with BiSeNet when "
                        "`triface models install bisenet` has been run, else the bundled parser alone")
    p.add_argument("--json", action="store_true", help="also write landmarks, pose and camera per image")
    p.add_argument("--face-index", type=int, default=None, help="which face (0 = largest)")
    p.set_defaults(func=run)


def analysis_json(fa) -> dict:
    return {
        "name": fa.name, "image_size": list(fa.image_size), "bbox": [round(v, 2) for v in fa.bbox],
        "score": round(fa.score, 4), "num_faces": fa.num_faces, "face_index": fa.face_index,
        "notes": list(fa.notes), "pose": {"yaw": fa.pose[0], "pitch": fa.pose[1], "roll": fa.pose[2]},
        "camera_label": [float(v) for v in fa.camera_label()],
        "crop_size": fa.crop_size, "crop_matrix": fa.crop_matrix.tolist(),
        "landmarks": fa.landmarks.round(3).tolist(), "crop_landmarks": fa.crop_landmarks.round(3).tolist(),
        "parser": fa.parser,
        "labels": {"NAME.png": "class ids on the photo (its size)",
                   "NAME_aligned.png": "class ids on the aligned crop (crop_size), with --aligned"},
    }


def run(args) -> int:
    from triface_studio.core.images import ImageError, load_image, save_image
    from triface_studio.core.files import atomic_write_bytes
    from triface_studio.core.semantics import colorize
    from triface_studio.models.face import FaceAnalyzer, NoFaceError

    from .main import CommandError

    by_stem: dict[str, list[str]] = {}
    for path in args.images:
        by_stem.setdefault(Path(path).stem, []).append(str(path))
    clashes = {s: ps for s, ps in by_stem.items() if len(ps) > 1}
    if clashes:        # DIR/NAME*.png would be written twice: refuse before any work
        stem, paths = next(iter(clashes.items()))
        raise CommandError(f"{len(paths)} photos would write the same outputs {stem}*.png ({', '.join(paths)}); "
                           f"rename one or parse them into different --out folders")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    analyzer = FaceAnalyzer("cpu", parser=args.parser)
    try:
        used = analyzer.parser_name          # loads it: a parser that cannot be had stops here
    except ValueError as e:
        raise CommandError(str(e)) from None
    print(f"triface parse: parser {used or 'none (no weights)'}", file=sys.stderr)
    failures = 0
    for path in args.images:
        stem = Path(path).stem
        try:
            img = load_image(path)
            fa = analyzer.analyze(img, name=str(path), parse=True, face_index=args.face_index)
        except (ImageError, NoFaceError, ValueError) as e:
            print(f"triface parse: error: {e}", file=sys.stderr)
            failures += 1
            continue
        for note in fa.notes:
            print(f"{path}: {note}", file=sys.stderr)
        save_image(out / f"{stem}_crop.png", fa.crop)
        if fa.labels is not None:
            on_photo = fa.photo_labels()
            save_image(out / f"{stem}.png", on_photo)
            if args.color:
                save_image(out / f"{stem}_color.png", colorize(on_photo))
            if args.aligned:
                save_image(out / f"{stem}_aligned.png", fa.labels)
                if args.color:
                    save_image(out / f"{stem}_aligned_color.png", colorize(fa.labels))
        if args.json:
            atomic_write_bytes(out / f"{stem}.json", json.dumps(analysis_json(fa), indent=1).encode())
        print(f"{path}: face {fa.face_index + 1}/{fa.num_faces}, yaw {fa.pose[0]:.1f} pitch {fa.pose[1]:.1f} "
              f"roll {fa.pose[2]:.1f}")
    if failures:
        print(f"triface parse: {failures} of {len(args.images)} image(s) failed", file=sys.stderr)
    return 2 if failures else 0
