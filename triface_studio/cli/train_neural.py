"""Training targets of the neural tier: ``triface train decoders`` and ``triface train score``.

``TARGETS`` maps a sub-target name to ``(help, add_arguments(parser), run(args) -> int)`` so the
``train`` command (cli/train.py) can mount them; :func:`register` mounts them on its own as a
``train`` command when no other module provides one.
"""

from __future__ import annotations

import json
import sys


def _common(p) -> None:
    p.add_argument("--data", required=True, metavar="DIR",
                   help="data folder: photos (in it or in images/) + EG3D dataset.json with camera labels "
                        "(decoders; the score model needs none) (+ labels/, planes/ for decoders)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoints, log.jsonl)")
    p.add_argument("--max-steps", type=int, required=True, metavar="N", help="stop after N optimisation steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--resolution", type=int, default=64, help="training resolution in pixels")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a run")
    p.add_argument("--ckpt-every", type=int, default=None, metavar="N")
    p.add_argument("--quiet", action="store_true")


def _progress(args):
    if args.quiet:
        return None
    last = [-1]

    def cb(f):
        pct = int(f * 100)
        if pct // 10 != last[0] // 10:
            print(f"  {pct}%", file=sys.stderr, flush=True)
        last[0] = pct

    return cb


def add_decoder_arguments(p) -> None:
    _common(p)
    p.add_argument("--perceptual", action="append", metavar="FILE",
                   help="LPIPS-VGG weights (torchvision VGG16 features.* and LPIPS lin0..lin4; safetensors or "
                        "tensor-only .pth; repeat for several files). Without it: L1 + (1 - MS-SSIM).")
    p.add_argument("--samples", type=int, default=24, help="coarse and importance samples per ray")
    p.add_argument("--lambda-seg", type=float, default=1.0)
    p.add_argument("--lambda-adv", type=float, default=0.05)


def run_decoders(args) -> int:
    from triface_studio.models.neural.training import DecoderTrainConfig, train_decoders

    cfg = DecoderTrainConfig(resolution=args.resolution, n_coarse=args.samples, n_importance=args.samples,
                             lambda_seg=args.lambda_seg, lambda_adv=args.lambda_adv)
    if args.batch_size:
        cfg.batch_size = args.batch_size
    if args.lr:
        cfg.lr = args.lr
    if args.ckpt_every:
        cfg.ckpt_every = args.ckpt_every
    r = train_decoders(args.data, args.out, args.max_steps, cfg, seed=args.seed, device=args.device,
                       perceptual=args.perceptual, resume=not args.no_resume, progress=_progress(args))
    print(json.dumps(r))
    return 0


def add_score_arguments(p) -> None:
    _common(p)
    p.add_argument("--channels", default="64,128,128,256", help="UNet block widths, comma-separated")
    p.add_argument("--layers-per-block", type=int, default=2)


def run_score(args) -> int:
    from triface_studio.models.neural.training import ScoreTrainConfig, train_score

    try:
        chans = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise ValueError(f"--channels must be comma-separated integers, not {args.channels!r}") from None
    cfg = ScoreTrainConfig(resolution=args.resolution, block_out_channels=chans, layers_per_block=args.layers_per_block)
    if args.batch_size:
        cfg.batch_size = args.batch_size
    if args.lr:
        cfg.lr = args.lr
    if args.ckpt_every:
        cfg.ckpt_every = args.ckpt_every
    r = train_score(args.data, args.out, args.max_steps, cfg, seed=args.seed, device=args.device,
                    resume=not args.no_resume, progress=_progress(args))
    print(json.dumps(r))
    return 0


TARGETS = {
    "decoders": ("train the semantic/RGB tri-plane decoders f^s, f^c (paper stage 1)", add_decoder_arguments,
                 run_decoders),
    "score": ("train the SDEdit score model (diffusers UNet2DModel, DDPM; paper stage 2)", add_score_arguments,
              run_score),
}


def register(sub) -> None:
    p = sub.add_parser("train", help="train the neural tier's decoders or score model")
    tsub = p.add_subparsers(dest="train_target", metavar="TARGET")
    for name, (help_, add_args, run) in TARGETS.items():
        q = tsub.add_parser(name, help=help_)
        add_args(q)
        q.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
