"""``triface train TARGET``: training commands.  ``TARGETS`` maps a target name to
``(help, add_arguments(parser), run(args) -> int)``; ``parser`` (the bundled face parser) lives
here, the neural tier's targets come from cli/train_neural.py."""

from __future__ import annotations

import json
import sys

from triface_studio.cli.train_neural import TARGETS as _NEURAL_TARGETS


def add_parser_arguments(p) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="celebamask-mini-like folder (images/, masks/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (parser.safetensors, metrics.json)")
    p.add_argument("--max-steps", type=int, default=6000, metavar="N")
    p.add_argument("--size", type=int, default=128, metavar="S", help="training resolution (multiple of 16)")
    p.add_argument("--width", type=int, default=16, help="base channel width of the network")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=250, metavar="N")
    p.add_argument("--repeat-threshold", type=float, default=0.0, metavar="F",
                   help="show photos with rare classes more often: a class in fewer than this fraction of "
                        "the photos is repeated sqrt(F / fraction) times (0: off; see the parser's model card)")
    p.add_argument("--split", default=None, metavar="JSON",
                   help="fixed split file ({'train': [...], 'val': [...]}); default: hash split, 120 held out")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS", help="stop after this long")
    p.add_argument("--init", default=None, metavar="SAFETENSORS",
                   help="start from these parser weights (same --width), e.g. the shipped checkpoint")


def run_parser(args) -> int:
    from triface_studio.models.parser.train import TrainConfig, train

    if args.size % 16:
        raise ValueError(f"--size must be a multiple of 16, got {args.size}")
    cfg = TrainConfig(size=args.size, width=args.width, batch=args.batch_size, lr=args.lr,
                      max_steps=args.max_steps, eval_every=min(args.eval_every, args.max_steps),
                      seed=args.seed, threads=args.threads, repeat_threshold=args.repeat_threshold)
    best = train(args.data, args.out, cfg, split_path=args.split,
                 log=lambda s: print(s, file=sys.stderr, flush=True), time_budget_s=args.time_budget,
                 init_path=args.init)
    print(json.dumps({"miou": best["miou"], "step": best.get("step"), "out": str(args.out)}))
    return 0


def add_fusion_arguments(p) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="celebamask-mini-like folder (images/, masks/)")
    p.add_argument("--out", required=True, metavar="JSON",
                   help="where to write the fusion weights (the shipped ones: resources/models/parser/fusion.json)")
    p.add_argument("--split", default=None, metavar="JSON",
                   help="split file (default: the bundled parser's); only its 'train' photos are used")
    p.add_argument("--photos", type=int, default=300, metavar="N",
                   help="training photos to sample (seeded choice; default 300)")
    p.add_argument("--bisenet-size", type=int, default=512, metavar="S", help="BiSeNet's input side (default 512)")
    p.add_argument("--stride", type=int, default=4, help="sample every S-th pixel of the 256 px grid (default 4)")
    p.add_argument("--augment", type=int, default=0, metavar="K",
                   help="fit on K augmented views of each photo instead of the photo (scale, rotation, "
                        "colour, blur): the bundled parser has memorised its training photos")
    p.add_argument("--threads", type=int, default=1)


def run_fusion(args) -> int:
    import numpy as np
    import torch

    from triface_studio.core.files import atomic_write_bytes
    from triface_studio.evaluation.parsers import fusion_samples, split_names
    from triface_studio.models.parser.bisenet import installed_bisenet_path, load_bisenet
    from triface_studio.models.parser.fusion import FusedParser, FusionWeights, fit_fusion
    from triface_studio.models.parser.inference import load_bundled_parser

    from pathlib import Path

    torch.set_num_threads(max(1, args.threads))
    bis = installed_bisenet_path()
    ours = load_bundled_parser()
    if bis is None or ours is None:
        raise ValueError("fitting the fusion needs BiSeNet (`triface models install bisenet`) and the bundled parser")
    names = split_names(Path(args.data), args.split, "train")
    if not names:
        raise ValueError(f"{args.data}: none of the split's training photos are there")
    names = sorted(np.random.default_rng(0).permutation(names)[:args.photos].tolist())
    fused = FusedParser(ours, load_bisenet(bis), FusionWeights.identity(args.bisenet_size))
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    lo, lb, t = fusion_samples(args.data, names, fused, stride=args.stride, augment=args.augment, log=log)
    fw = fit_fusion(lo.float(), lb.float(), t, bisenet_size=args.bisenet_size, log=log)
    info = dict(fw.info or {}, photos=len(names), split="train", stride=args.stride, augment=args.augment,
                command="triface train fusion " + " ".join(sys.argv[3:]))
    doc = FusionWeights(fw.weight, fw.bias, fw.bisenet_size, fw.work, info).to_json()
    atomic_write_bytes(Path(args.out), (json.dumps(doc, indent=1) + "\n").encode())
    print(json.dumps({"out": str(args.out), **info}))
    return 0


TARGETS: dict = {
    "parser": ("train the bundled 19-class face parser", add_parser_arguments, run_parser),
    "fusion": ("fit the per-class fusion of the bundled parser and BiSeNet on the training split",
               add_fusion_arguments, run_fusion),
}
TARGETS.update(_NEURAL_TARGETS)


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (" + ", ".join(TARGETS) + ")")
    tsub = p.add_subparsers(dest="train_target", metavar="TARGET")
    for name, (help_, add_args, run) in TARGETS.items():
        q = tsub.add_parser(name, help=help_)
        add_args(q)
        q.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
