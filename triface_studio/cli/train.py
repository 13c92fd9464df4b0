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


TARGETS: dict = {
    "parser": ("train the bundled 19-class face parser", add_parser_arguments, run_parser),
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
