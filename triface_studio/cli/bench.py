"""``triface bench``: stage timings as JSON."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("bench", help="time every stage (render, parse, encode, edit, export) and print JSON",
                       description="Time the stages of TriFace Studio; medians over repeats.")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--stage", action="append", dest="stages", metavar="NAME",
                   help="run only this stage (repeatable); default: all")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="small sizes and one repeat (smoke test)")
    p.add_argument("--json", action="store_true", help="print only the JSON document")
    p.add_argument("--out", help="also write the JSON document to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    from triface_studio.evaluation import bench

    doc = bench.run(args.stages, device=args.device, repeats=args.repeats, quick=args.quick)
    text = json.dumps(doc, indent=2)
    if args.out:
        from triface_studio.core.files import atomic_write_bytes

        atomic_write_bytes(args.out, (text + "\n").encode())
    if args.json:
        print(text)
    else:
        print(f"device: {doc['device']}  torch {doc['torch']}  threads {doc['threads']}")
        for r in doc["results"]:
            extra = {k: v for k, v in r.items() if k not in ("stage", "ms_median")}
            print(f"  {r['stage']:<16} {r.get('ms_median', float('nan')):>10} ms  {extra}")
    return 0
