"""``triface eval``: the paper's evaluation protocol (Bilecen et al.) on a data folder."""

from __future__ import annotations

import json
import sys

from triface_studio.pipeline.requests import REFINERS, TIERS, RefineSettings


def register(sub) -> None:
    refine = RefineSettings()
    p = sub.add_parser("eval", help="measure edits by the paper's protocol (SSIM/L2 outside the region, FID/KID)",
                       description="Pair identities and references by the protocol of Bilecen et al. "
                                   "(eyeglasses: add glasses; hair: black-haired identities, blonde references), "
                                   "run the edits and write pairs.csv, summary.json and contact_sheet.png.")
    p.add_argument("--task", required=True, choices=("eyeglasses", "hair", "lift", "views", "sheet", "parsers"),
                   help="an edit task; 'lift': PSNR at the source camera and frontal landmark error "
                        "of the image-to-plane lift on held-out photos; 'views': landmarks, streaks and "
                        "empty background of orbit views of held-out photos, with a contact sheet "
                        "(8 photos unless --limit); 'sheet': the fixed contact sheet of 16 held-out edits "
                        "(hair, eyeglasses, half hair, nose, lips) to look at; 'parsers': per-class IoU of the "
                        "shipped parser, BiSeNet and the fused parser (when installed) on the parser's "
                        "held-out photos, in each photo's own frame")
    p.add_argument("--data", required=True, help="folder with images/, optional masks/ and tags.csv")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--limit", type=int, default=None, help="at most this many pairs")
    p.add_argument("--seed", type=int, default=0, help="pairing and edit seed (default 0)")
    p.add_argument("--turned", type=int, default=4,
                   help="views: also measure, apart, this many of the most turned other held-out photos "
                        "(|yaw| >= 25 degrees; default 4, 0 for none)")
    p.add_argument("--tier", default="bundled", choices=(*TIERS, "relief"),
                   help="model tier (relief: the pipeline's 2D test stand-in, needs masks/)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--inception", metavar="PTH",
                   help="pytorch-fid Inception checkpoint (pt_inception-2015-12-05-*.pth) for fid_inception")
    p.add_argument("--rendered", action="store_true",
                   help="also measure T^com rendered at the identity's camera (*_t_com; one 512 px render per pair)")
    p.add_argument("--refiner", default=refine.refiner, choices=REFINERS,
                   help="refinement inside M_sde (sdedit needs --score-model): the paper's SDE ablation")
    p.add_argument("--score-model", metavar="DIR", help="diffusers score model folder for --refiner sdedit")
    p.add_argument("--t0", type=float, default=refine.t0, help=f"SDEdit noise level (default {refine.t0:g})")
    p.add_argument("--steps", type=int, default=refine.steps, help=f"SDEdit denoising steps (default {refine.steps})")
    p.add_argument("--split", default="heldout", choices=("heldout", "train", "all"),
                   help="photos to pair: the parser's held-out split (default; never tuned on), its training "
                        "split, or the whole folder")
    p.add_argument("--json", action="store_true", help="print the summary JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from triface_studio.evaluation.evaluate import evaluate
    from triface_studio.pipeline import EditError

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.task == "sheet":
        from triface_studio.evaluation.sheet import render_sheet

        out = render_sheet(args.data, args.out, log=lambda m: print(m, file=sys.stderr, flush=True))
        broken = sum(1 for p in out["pairs"] if p.get("looks_broken") or "error" in p)
        print(json.dumps(out, indent=2) if args.json else
              f"sheet: {len(out['pairs'])} edits, {broken} flagged by the realism measures -> {out['sheet']}")
        return 0
    if args.task == "parsers":
        from triface_studio.evaluation.parsers import evaluate_parsers

        subset = {"heldout": "val", "train": "train"}.get(args.split)
        if subset is None:
            raise ValueError("--task parsers measures one split of the parser: --split heldout or train")
        summary = evaluate_parsers(args.data, args.out, subset=subset, limit=args.limit,
                                   log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps({k: v for k, v in summary.items() if k != "confusion"}, indent=2) if args.json else
              "  ".join(f"{k}: mIoU {v['miou']:.3f} ({v['ms_per_crop']:.0f} ms)" for k, v in summary["parsers"].items())
              + f"  ({summary['photos']} photos) -> {args.out}")
        return 0
    if args.task == "lift":
        from triface_studio.evaluation.lift import evaluate_lift

        summary = evaluate_lift(args.data, args.out, limit=args.limit, tier=args.tier, device=args.device,
                                log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps(summary, indent=2) if args.json else
              f"lift: {summary['photos']} photos  PSNR at source camera {summary['psnr_source']} dB  "
              f"frontal landmark error {summary['landmark_px']} px (crop alone {summary['crop_landmark_px']} px, "
              f"{summary['turned_photos']} turned photos)  -> {args.out}")
        return 0
    if args.task == "views":
        from triface_studio.evaluation.views import evaluate_views

        if args.turned < 0:
            raise ValueError(f"--turned must be 0 or more, not {args.turned}")
        summary = evaluate_views(args.data, args.out, limit=args.limit or 8, tier=args.tier, device=args.device,
                                 log=lambda m: print(m, file=sys.stderr, flush=True), turned=args.turned,
                                 split=args.split)
        print(json.dumps(summary, indent=2) if args.json else
              f"views: {summary['photos']} photos  face found in {summary['found']} of views  landmarks "
              f"{summary['landmark_px']} px  streaks {summary['streak_share']} (photo "
              f"{summary['photo_streak_share']})  empty {summary['empty_share']}  "
              f"PSNR head {summary['psnr_head']} dB  extra eyes/brows {summary['extra_parts']} a view; "
              f"{summary['turned']['photos']} turned photos: landmarks {summary['turned']['landmark_px']} px  "
              f"extra eyes/brows {summary['turned']['extra_parts']} a view  -> {args.out}")
        return 0
    try:
        summary = evaluate(args.task, args.data, args.out, limit=args.limit, seed=args.seed, tier=args.tier,
                           device=args.device, inception=args.inception, rendered=args.rendered,
                           split=args.split,
                           refine=RefineSettings(refiner=args.refiner, score_model=args.score_model, t0=args.t0,
                                                 steps=args.steps),
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    except EditError as e:
        raise ValueError(str(e)) from None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['task']}: {summary['pairs']} pairs  SSIM outside {summary['ssim_outside']} "
              f"(isolated {summary['ssim_outside_isolated']})  "
              f"L2 outside {summary['l2_outside']}  success {summary['success_rate']}  "
              f"{summary['sec_per_edit']} s/edit  -> {args.out}")
    return 0
