"""Hostile inputs of issue 17 as one table, and the harness that runs them.

Every case builds its inputs in a fresh folder, runs ``triface ...`` and is *handled* when the
command ends as the house rules ask: a refusal exits 2 with a one-line ``error:`` message, no
traceback, no internal path (``.part``) and the folder exactly as it was (nothing written,
nothing lost); a case that should succeed says so with its own check.  The edit pipeline runs
on the weight-free stand-ins (``pipeline.relief``) so that the table is fast; the few cases
that need the bundled models are marked ``real``.

``tests/test_hostile_inputs.py`` runs the table under pytest; ``python tests/hostile_cases.py``
prints the count of handled cases (used to measure the issue before and after the fix)::

    cd /work/wt17 && PYTHONPATH=. .venv/bin/python tests/hostile_cases.py [--no-real] [--no-slow] [-v] [ID...]

(``--heavy-in-child`` runs the multi-GB cases in a memory-limited child, as for the count
before the fix, when a mishandled case would really allocate.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "resources" / "samples"
WORK_MARK = "[hostile: work started]"
MAIN_MARK = "[hostile: main took]"         # a child's own time, without the interpreter's start
MEMORY_LIMIT = 6 << 30          # address space of a child running a multi-GB case
HEAVY_SECONDS = 10.0            # a multi-GB case must be refused within this (on a loaded 2-core machine)


# -- the stand-in models -------------------------------------------------------------------------
def install_stand_ins() -> None:
    """Replace the bundled models by the weight-free stand-ins, with one identity and one
    reference that they know, and mark the start of the real work on stderr."""
    import triface_studio.models.face as face_pkg
    import triface_studio.pipeline as pipeline_pkg
    from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier

    an = _analyzer()

    class Pipe(pipeline_pkg.EditPipeline):
        def __init__(self, tier="bundled", device="cpu", analyzer=None, checkpoint_dir=None):
            super().__init__(tier=ReliefTier(resolution=32), device=device, analyzer=an)

        def run(self, request, progress=None, cancel=None):
            print(WORK_MARK, file=sys.stderr, flush=True)
            return super().run(request, progress, cancel)

        def render_view(self, *a, **k):
            delay = float(os.environ.get("HOSTILE_VIEW_DELAY", "0"))
            if delay:
                time.sleep(delay)
            return super().render_view(*a, **k)

    class Analyzer:
        """The stand-in analyser behind FaceAnalyzer(device) (parse, encode)."""

        def __init__(self, device="cpu", *a, **k):
            pass

        def analyze(self, *a, **k):
            print(WORK_MARK, file=sys.stderr, flush=True)
            fa = an.analyze(*a, **k)
            for name, value in (("face_index", 0), ("num_faces", 1), ("pose", (0.0, 0.0, 0.0))):
                if not hasattr(fa, name):
                    setattr(fa, name, value)
            return fa

    pipeline_pkg.EditPipeline = Pipe
    face_pkg.FaceAnalyzer = Analyzer


_AN = None


def portraits():
    sys.path.insert(0, str(ROOT / "tests"))
    from test_pipeline_edit import BLACK, BLONDE, portrait

    return portrait(BLACK, 120), portrait(BLONDE, 60, glasses=True)


def _analyzer():
    global _AN
    if _AN is None:
        from triface_studio.pipeline.relief import AlignedAnalyzer

        _AN = AlignedAnalyzer()
        for img, lab in portraits():
            _AN.add(img, lab)
    return _AN


# -- running a case ------------------------------------------------------------------------------
@dataclass
class Outcome:
    rc: int
    out: str
    err: str
    seconds: float
    before: dict
    after: dict


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` -> (kind, size, mtime_ns, mode); what a refusal must keep."""
    snap = {}
    for dirpath, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = Path(dirpath) / n
            st = p.lstat()
            snap[str(p.relative_to(folder))] = (st.st_mode >> 12, st.st_size if n in files else 0,
                                                st.st_mtime_ns if n in files else 0, st.st_mode & 0o7777)
    return snap


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    from triface_studio.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 2
        except BaseException:                       # noqa: BLE001 -- exactly what a case must never do
            traceback.print_exc()
            rc = 99
    return int(rc), out.getvalue(), err.getvalue()


@contextlib.contextmanager
def memory_cap(extra: int = 3 << 30):
    """Cap this process's address space at its current size + ``extra`` for the duration (the
    soft limit only, so it can be restored): a multi-GB case fails instead of swapping."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        size = int(next(ln for ln in Path("/proc/self/status").read_text().splitlines()
                        if ln.startswith("VmSize:")).split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        yield
        return
    cap = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_in_child(argv: list[str], cwd: Path, real: bool, timeout: float, env: dict | None = None,
                 signal_when: Callable[[], bool] | None = None, sig: int = signal.SIGTERM,
                 limit_memory: bool = False) -> tuple[int, str, str]:
    """``triface ARGV`` in a fresh interpreter (stand-ins unless ``real``); optionally send ``sig``
    once ``signal_when()`` holds.  A crash by a signal is returned as -signum."""
    code = ("import sys; sys.path.insert(0, %r); import hostile_cases as h\n"
            "%s\nimport torch, PIL.Image, triface_studio.pipeline\nfrom triface_studio.cli.main import main\nimport time; t0 = time.perf_counter()\n"
            "try:\n    rc = main(sys.argv[1:])\nfinally:\n"
            "    print('%s %%.2f' %% (time.perf_counter() - t0), file=sys.stderr)\nsys.exit(rc)\n"
            % (str(ROOT / "tests"), "" if real else "h.install_stand_ins()", MAIN_MARK))

    def limits():
        if limit_memory:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    e = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen", **(env or {}))
    p = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=cwd, env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=limits)
    if signal_when is not None:
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() - t0 < timeout:
            if signal_when():
                time.sleep(0.2)
                p.send_signal(sig)
                break
            time.sleep(0.05)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return 124, out, err + "\n[hostile: timed out]"
    return p.returncode, out, err


# -- the table ---------------------------------------------------------------------------------
@dataclass
class Case:
    """``build(tmp) -> argv``; ``expect``: "refuse" (exit 2, a message, the folder unchanged) or a
    function ``(tmp, outcome) -> None | str`` (a string says what went wrong)."""

    id: str
    group: int
    build: Callable[[Path], list]
    expect: object = "refuse"
    before_work: bool = True        # the refusal must come before the analysis or the edit starts
    isolate: bool = False           # run in a child interpreter (crashes, signals, native output)
    heavy: bool = False             # multi-GB if mishandled: a child with a memory limit, must be fast
    real: bool = False              # needs the bundled models
    needs: tuple = ()               # e.g. ("shared",): skipped when absent
    run: Callable | None = None     # a custom runner (tmp) -> Outcome
    marks: dict = field(default_factory=dict)


def judge(case: Case, o: Outcome, tmp: Path) -> str | None:
    """None when ``case`` was handled, else what went wrong."""
    err = o.err.replace(WORK_MARK + "\n", "")
    took = [ln for ln in err.splitlines() if ln.startswith(MAIN_MARK)]
    seconds = float(took[-1].split()[-1]) if took else o.seconds
    err = "\n".join(ln for ln in err.splitlines() if not ln.startswith(MAIN_MARK))
    if o.rc < 0:
        return f"killed by signal {-o.rc}"
    if "Traceback" in o.err:
        return "traceback: " + o.err.strip().splitlines()[-1][:160]
    if ".part" in o.err or ".part" in o.out:
        return "message names an internal .part path"
    if case.heavy and seconds > HEAVY_SECONDS:
        return f"took {seconds:.1f} s"
    if case.expect == "refuse":
        if o.rc != 2:
            return f"exit {o.rc}, expected a refusal (2)"
        if "error:" not in err:
            return "no error message"
        if case.before_work and WORK_MARK in o.err:
            return "refused only after the work had started"
        if o.before != o.after:
            changed = sorted(set(o.before.items()) ^ set(o.after.items()))[:3]
            return f"the folder changed: {changed}"
        return None
    return case.expect(tmp, dataclasses.replace(o, err=err))


def run_case(case: Case, tmp: Path, heavy_in_process: bool = True) -> Outcome:
    """Run ``case`` in ``tmp``; a heavy case runs in this process under :func:`memory_cap`
    (``heavy_in_process``, fast) or in a child with ``MEMORY_LIMIT`` (safe before a fix)."""
    tmp.mkdir(parents=True, exist_ok=True)
    argv = [str(a) for a in case.build(tmp)]
    before = snapshot(tmp)
    t0 = time.perf_counter()
    if case.run is not None:
        rc, out, err = case.run(tmp, argv)
    elif case.isolate or case.real or (case.heavy and not heavy_in_process):
        rc, out, err = run_in_child(argv, tmp, case.real, 300, limit_memory=case.heavy)
    elif case.heavy:
        with memory_cap():
            rc, out, err = run_in_process(argv)
    else:
        rc, out, err = run_in_process(argv)
    return Outcome(rc, out, err, time.perf_counter() - t0, before, snapshot(tmp))


# -- inputs -----------------------------------------------------------------------------------------
def photos(tmp: Path) -> tuple[str, str]:
    from triface_studio.core.images import save_image

    (ident, _), (ref, _) = portraits()
    save_image(tmp / "ident.png", ident)
    save_image(tmp / "ref.png", ref)
    return str(tmp / "ident.png"), str(tmp / "ref.png")


def edit_argv(tmp: Path, *extra, out="out") -> list:
    i, r = photos(tmp)
    return ["edit", "--identity", i, "--reference", r, "--attribute", "hair", "--out", str(tmp / out),
            "--view-resolution", "16", "--views", "1", "--quiet", *extra]


def previous_edit(tmp: Path, *extra) -> Path:
    """An earlier, successful edit in tmp/out."""
    rc, _, err = run_in_process(edit_argv(tmp, *extra))
    assert rc == 0, err
    return tmp / "out"


def edit_json(tmp: Path, request=None, exports=None, doc=None) -> Path:
    i, r = photos(tmp)
    if doc is None:
        req = {"identity": i, "references": [{"image": r, "attributes": ["hair"]}]}
        req.update(request or {})
        doc = {"format": "triface-edit", "format_version": 1, "request": req,
               "exports": {"views": 1, "view_resolution": 16, **(exports or {})}}
    p = tmp / "in.json"
    p.write_text(json.dumps(doc))
    return p


def from_json(tmp, **kw) -> list:
    return ["edit", "--from", str(edit_json(tmp, **kw)), "--out", str(tmp / "out"), "--quiet"]


def triplane_file(tmp: Path, planes=None, **meta) -> Path:
    import torch
    from safetensors.torch import save_file

    if planes is None:
        planes = torch.zeros(1, 3, 24, 32, 32)
    m = {"format": "triface-triplane", "format_version": "1", "tier": "bundled",
         "resolution": str(planes.shape[-1]) if planes.ndim else "0",
         "channels": str(planes.shape[2]) if planes.ndim > 2 else "0", "source_camera": "null", "extra": "{}"}
    m.update(meta)
    p = tmp / "t.safetensors"
    save_file({"planes": planes.contiguous()}, str(p), metadata=m)
    return p


def render(tmp, *extra, **kw) -> list:
    return ["render", str(triplane_file(tmp, **kw)), "--res", "16", "--out", str(tmp / "view.png"), *extra]


def planes(dtype="float32", shape=(1, 3, 24, 32, 32), fill=0.0):
    import torch

    return torch.full(shape, fill, dtype=getattr(torch, dtype)) if dtype != "bool" else torch.zeros(shape, dtype=torch.bool)


def bomb_png(path: Path, size: int = 20000) -> Path:
    """A small PNG (a few MB at most) whose header says size x size pixels."""
    import zlib
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" + b"\0" * size
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(size)) + comp.flush()
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    path.write_bytes(png)
    return path


# -- expectations ----------------------------------------------------------------------------------
def succeeds(check: Callable[[Path, Outcome], str | None] | None = None):
    def expect(tmp, o):
        if o.rc != 0:
            return f"exit {o.rc}: {o.err.strip()[-200:]}"
        return check(tmp, o) if check else None
    return expect


def listed_files_only(tmp: Path, o: Outcome) -> str | None:
    """out/ holds exactly what its edit.json lists."""
    out = tmp / "out"
    doc = json.loads((out / "edit.json").read_text())
    have = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    if have != sorted(doc["files"]):
        return f"out/ holds {sorted(set(have) ^ set(doc['files']))[:4]} beyond/short of edit.json's list"
    return None


def _hidden(tmp: Path) -> list[str]:
    """Staging is whatever hidden entry appears beside the inputs (the cases make no hidden files)."""
    return [p.name for p in tmp.iterdir() if p.name.startswith(".")]


def no_staging_left(tmp: Path) -> str | None:
    left = _hidden(tmp)
    return f"staging left behind: {left}" if left else None


def _staging_exists(tmp: Path):
    return lambda: bool(_hidden(tmp))


def signalled_run(sig):
    def runner(tmp, argv):
        return run_in_child(argv, tmp, False, 120, env={"HOSTILE_VIEW_DELAY": "0.5"},
                            signal_when=_staging_exists(tmp), sig=sig)
    return runner


def signal_expect(tmp, o):
    if o.rc == 0:
        return "the run was not interrupted"
    if "Traceback" in o.err:
        return "traceback"
    return no_staging_left(tmp) or ("out/ was created" if (tmp / "out").exists() else None)


def killed_then_rerun(tmp, argv):
    run_in_child(argv, tmp, False, 120, env={"HOSTILE_VIEW_DELAY": "0.5"},
                 signal_when=_staging_exists(tmp), sig=signal.SIGKILL)
    other = [a if a != str(tmp / "out") else str(tmp / "out2") for a in argv]
    other[other.index("--views") + 1] = "0"
    return run_in_process(other)


def stale_removed(tmp, o):
    return (f"rerun failed: {o.err.strip()[-200:]}" if o.rc else None) or no_staging_left(tmp)


def modes_uniform(tmp, o):
    out = tmp / "out"
    um = os.umask(0)
    os.umask(um)
    bad = [f"{p.relative_to(out)} {oct(p.stat().st_mode & 0o777)}" for p in [out, *out.rglob("*")]
           if p.stat().st_mode & 0o777 != ((0o777 if p.is_dir() else 0o666) & ~um)]
    return f"modes not as the umask says: {bad[:4]}" if bad else None


def float_tiff_mask(tmp, argv):
    from PIL import Image

    from triface_studio.core.images import load_mask

    a = np.zeros((64, 64), np.float32)
    a[:, :32] = 1.0
    Image.fromarray(a, mode="F").save(tmp / "m.tif")
    m = load_mask(tmp / "m.tif")
    return (0 if abs(float(m.mean()) - 0.5) < 0.01 else 1), "", f"mean {m.mean():.3f}"


def full_mask(tmp: Path) -> str:
    from PIL import Image

    Image.fromarray(np.full((512, 512), 255, np.uint8)).save(tmp / "full.png")
    return str(tmp / "full.png")


def rerun_into(setup: Callable[[Path], None], *extra, **kw):
    """An earlier edit in out/, changed by ``setup``, then the same edit again (with ``extra``)."""
    def build(tmp):
        previous_edit(tmp, *kw.get("first", ()))
        setup(tmp / "out")
        return edit_argv(tmp, *extra)
    return build


def _views_as_file(out: Path):
    import shutil

    shutil.rmtree(out / "views")
    (out / "views").write_text("not the views")


def _foreign_file(out: Path):
    (out / "notes.txt").write_text("mine")


def _dangling(tmp: Path) -> list:
    (tmp / "link").symlink_to(tmp / "gone" / "x")
    photos(tmp)
    return edit_argv(tmp, out="link")


def _lift_data(tmp: Path) -> list:
    import shutil

    (tmp / "d" / "images").mkdir(parents=True)
    shutil.copy(SAMPLES / "grace_hopper.jpg", tmp / "d" / "images" / "a.jpg")
    (tmp / "d" / "images" / "b.png").write_bytes(b"not a png")
    return ["eval", "--task", "lift", "--data", str(tmp / "d"), "--out", str(tmp / "e")]


def _score_data(tmp: Path) -> list:
    from triface_studio.core.images import save_image

    (tmp / "d" / "images").mkdir(parents=True)
    for k in range(2):
        save_image(tmp / "d" / "images" / f"{k}.png", np.full((64, 64, 3), 40 * k + 60, np.uint8))
    return ["train", "score", "--data", str(tmp / "d"), "--out", str(tmp / "s"), "--max-steps", "1",
            "--resolution", "16", "--channels", "8,8", "--layers-per-block", "1", "--batch-size", "1"]


def _quiet_noface(tmp: Path) -> list:
    from triface_studio.core.images import save_image

    save_image(tmp / "wall.png", np.full((256, 256, 3), 128, np.uint8))
    return ["edit", "--identity", str(tmp / "wall.png"), "--reference", str(SAMPLES / "astronaut.png"),
            "--attribute", "hair", "--out", str(tmp / "out"), "--quiet"]


def quiet_expect(tmp, o):
    lines = [ln for ln in o.err.splitlines() if ln.strip()]
    if o.rc != 2 or len(lines) != 1 or "error:" not in lines[0]:
        return f"--quiet printed {lines[:3]}"
    return None


def _parse_clash(tmp: Path) -> list:
    from triface_studio.core.images import save_image

    (ident, _), (ref, _) = portraits()
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    save_image(tmp / "a" / "x.png", ident)
    save_image(tmp / "b" / "x.jpg", ref)
    return ["parse", str(tmp / "a" / "x.png"), str(tmp / "b" / "x.jpg"), "--out", str(tmp / "p")]


def _parse_clash_expect(tmp, o):
    if o.rc == 0:
        crops = sorted(p.name for p in (tmp / "p").glob("*_crop.png"))
        return None if len(crops) == 2 else f"outputs collided: {crops}"
    return judge(Case("x", 10, lambda t: [], before_work=True), o, tmp)


def _cwd_setup(tmp: Path) -> list:
    """The user's own folder (one file in it) as the current folder, and ``--out . --overwrite``."""
    (tmp / "work").mkdir()
    (tmp / "work" / "thesis.txt").write_text("years of work")
    argv = edit_argv(tmp, "--overwrite")
    argv[argv.index("--out") + 1] = "."
    return argv


def _in_cwd(tmp: Path, argv: list) -> tuple[int, str, str]:
    """``argv`` run in ``tmp`` as the current folder (``--out .``)."""
    old = os.getcwd()
    os.chdir(tmp)
    try:
        return run_in_process(argv)
    finally:
        os.chdir(old)


def _extra_masks(tmp):
    return edit_argv(tmp, "--mask", full_mask(tmp), "--mask", full_mask(tmp))


CASES: list[Case] = [
    # 1. tri-plane files
    Case("render-float16", 1, lambda t: render(t, planes=planes("float16")), isolate=True,
         expect=lambda t, o: None if o.rc in (0, 2) and not (o.rc == 0 and not (t / "view.png").is_file())
         else f"exit {o.rc}"),
    Case("render-int32", 1, lambda t: render(t, planes=planes("int32"))),
    Case("render-bool", 1, lambda t: render(t, planes=planes("bool"))),
    Case("render-5-channels", 1, lambda t: render(t, planes=planes(shape=(1, 3, 5, 32, 32)))),
    Case("render-zero-size", 1, lambda t: render(t, planes=planes(shape=(1, 3, 24, 0, 0)))),
    Case("render-bad-camera-json", 1, lambda t: render(t, source_camera="[1, 2")),
    Case("render-camera-wrong-length", 1, lambda t: render(t, source_camera="[1, 2, 3]")),
    Case("render-bad-extra-json", 1, lambda t: render(t, extra="{oops")),
    Case("render-bad-version", 1, lambda t: render(t, format_version="one")),
    Case("render-nan-planes", 1, lambda t: render(t, planes=planes(fill=float("nan")))),
    Case("render-yaw-nan", 1, lambda t: render(t, "--yaw", "nan")),
    Case("render-pitch-inf", 1, lambda t: render(t, "--pitch", "inf")),
    # 2. the output folder is replaced as a whole
    Case("rerun-views-blocked", 2, rerun_into(_views_as_file)),
    Case("rerun-views-blocked-overwrite", 2, rerun_into(_views_as_file, "--overwrite"),
         expect=succeeds(listed_files_only)),
    # 3. checked before the work
    Case("out-parent-is-a-file", 3, lambda t: (Path(t, "f").write_text("x"), edit_argv(t, out="f/sub"))[1]),
    Case("out-dangling-symlink", 3, _dangling),
    Case("out-250-char-name", 3, lambda t: edit_argv(t, out="n" * 250), expect=succeeds()),
    Case("out-256-char-name", 3, lambda t: edit_argv(t, out="n" * 256)),
    Case("out-in-proc", 3, lambda t: (photos(t), edit_argv(t, out="/proc/triface-out"))[1]),
    Case("encode-out-dir", 3, lambda t: ["encode", photos(t)[0], "--out", str(t)]),
    Case("encode-out-missing-parent", 3, lambda t: ["encode", photos(t)[0], "--out", str(t / "no" / "t.st")]),
    # 4. the folder belongs to the edit
    Case("rerun-foreign-file", 4, rerun_into(_foreign_file)),
    Case("rerun-foreign-file-overwrite", 4, rerun_into(_foreign_file, "--overwrite"),
         expect=succeeds(listed_files_only)),
    Case("input-inside-out-overwrite", 4, lambda t: (previous_edit(t), (t / "out" / "me.png").write_bytes(
        (t / "ident.png").read_bytes()), edit_argv(t, "--overwrite")[:2] + [str(t / "out" / "me.png")]
        + edit_argv(t, "--overwrite")[3:])[2]),
    Case("out-is-cwd-overwrite", 4, lambda t: _cwd_setup(t), run=lambda t, argv: _in_cwd(t / "work", argv)),
    Case("rerun-stale-exports", 4, rerun_into(lambda out: None, "--views", "0", first=("--views", "2", "--gif")),
         expect=succeeds(listed_files_only)),
    # 5. signals
    Case("sigterm-mid-export", 5, lambda t: edit_argv(t, "--views", "40"), run=signalled_run(signal.SIGTERM),
         expect=signal_expect),
    Case("sighup-mid-export", 5, lambda t: edit_argv(t, "--views", "40"), run=signalled_run(signal.SIGHUP),
         expect=signal_expect),
    Case("sigkill-then-rerun", 5, lambda t: edit_argv(t, "--views", "40"), run=killed_then_rerun,
         expect=stale_removed),
    # 6. decompression bombs
    Case("bomb-identity", 6, lambda t: ["edit", "--identity", bomb_png(t / "bomb.png"), "--reference",
                                        photos(t)[1], "--attribute", "hair", "--out", t / "out"], heavy=True),
    Case("bomb-mask", 6, lambda t: edit_argv(t, "--mask", bomb_png(t / "bomb.png")), heavy=True),
    Case("bomb-render-res", 6, lambda t: render(t, "--res", "4096"), heavy=True,
         expect=lambda t, o: None if o.rc in (0, 2) and "Traceback" not in o.err else f"exit {o.rc}"),
    # 7. numbers
    Case("view-resolution-negative", 7, lambda t: edit_argv(t, "--view-resolution", "-5")),
    Case("view-resolution-zero", 7, lambda t: edit_argv(t, "--view-resolution", "0")),
    Case("yaw-range-nan", 7, lambda t: edit_argv(t, "--yaw-range", "nan")),
    Case("yaw-range-inf", 7, lambda t: edit_argv(t, "--yaw-range", "inf")),
    Case("background-nan", 7, lambda t: edit_argv(t, "--background", "nan,0,0")),
    Case("background-out-of-range", 7, lambda t: edit_argv(t, "--background", "300,0,0")),
    Case("json-views-1e9", 7, lambda t: from_json(t, exports={"views": 1e9}), heavy=True),
    Case("json-render-resolution-negative", 7, lambda t: from_json(t, request={"render_resolution": -256})),
    Case("json-render-resolution-1e6", 7, lambda t: from_json(t, request={"render_resolution": 1e6}), heavy=True),
    Case("dilate-1e9", 7, lambda t: edit_argv(t, "--dilate-radius", "1000000000"), heavy=True),
    Case("json-mesh-resolution-1e5", 7, lambda t: from_json(t, exports={"mesh": True, "mesh_resolution": 1e5}),
         heavy=True),
    Case("json-seed-1e30", 7, lambda t: from_json(t, request={"seed": 1e30})),
    Case("json-views-text", 7, lambda t: from_json(t, exports={"views": "many"})),
    Case("steps-zero", 7, lambda t: edit_argv(t, "--steps", "0")),
    # 8. devices
    Case("device-cuda-absent", 8, lambda t: edit_argv(t, "--device", "cuda")),
    Case("device-tpu", 8, lambda t: edit_argv(t, "--device", "tpu")),
    # 9. the structure of edit.json
    Case("json-list", 9, lambda t: from_json(t, doc=[])),
    Case("json-null", 9, lambda t: from_json(t, doc=None) if False else
         ["edit", "--from", (Path(t, "n.json").write_text("null"), str(Path(t, "n.json")))[1], "--out", t / "o"]),
    Case("json-references-strings", 9, lambda t: from_json(t, request={"references": ["a.png"]})),
    Case("json-attributes-number", 9, lambda t: from_json(t, request={"references": [
        {"image": photos(t)[1], "attributes": 7}]})),
    Case("json-refine-list", 9, lambda t: from_json(t, request={"refine": [1, 2]})),
    Case("json-exports-string", 9, lambda t: from_json(t, exports=None) if False else
         ["edit", "--from", (Path(t, "e.json").write_text(json.dumps(
             {"format": "triface-edit", "request": {"identity": photos(t)[0], "references": [
                 {"image": photos(t)[1], "attributes": ["hair"]}]}, "exports": "all"})), str(Path(t, "e.json")))[1],
          "--out", t / "o"]),
    # 10. parse name clashes
    Case("parse-same-stem", 10, _parse_clash, expect=_parse_clash_expect),
    # 11. masks
    Case("float-tiff-mask", 11, lambda t: [], run=float_tiff_mask, expect=lambda t, o: o.err if o.rc else None),
    Case("subtract-full-mask", 11, lambda t: edit_argv(t, "--mask", full_mask(t), "--mask-mode", "subtract"),
         before_work=False),
    Case("extra-masks", 11, _extra_masks),
    Case("extra-mask-modes", 11, lambda t: edit_argv(t, "--mask-mode", "add", "--mask-mode", "replace")),
    # 12. smaller
    Case("render-semantic-missing-folder", 12, lambda t: render(t, "--semantic", t / "missing" / "s.png")),
    Case("quiet-is-quiet", 12, _quiet_noface, real=True, isolate=True, expect=quiet_expect),
    Case("file-modes", 12, lambda t: edit_argv(t), expect=succeeds(modes_uniform)),
    Case("edit-face-index", 12, lambda t: edit_argv(t, "--face-index", "0"), expect=succeeds()),
    Case("eval-lift-bad-image", 12, _lift_data, real=True, isolate=True, needs=("slow",),
         expect=succeeds(lambda t, o: None if (t / "e" / "summary.json").is_file() else "no summary")),
    Case("train-score-plain-folder", 12, _score_data, isolate=True, needs=("slow",), expect=succeeds()),
]


def main(argv: list[str]) -> int:
    skip_real = "--no-real" in argv
    skip_slow = "--no-slow" in argv
    heavy_in_process = "--heavy-in-child" not in argv
    verbose = "-v" in argv
    only = [a for a in argv if not a.startswith("-")]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    install_stand_ins()
    handled, total, failed = 0, 0, []
    for case in CASES:
        if only and case.id not in only:
            continue
        if (skip_real and case.real) or (skip_slow and "slow" in case.needs):
            continue
        total += 1
        with tempfile.TemporaryDirectory(prefix="hostile-") as d:
            tmp = Path(d)
            try:
                o = run_case(case, tmp, heavy_in_process)
                why = judge(case, o, tmp)
            except Exception as e:                  # noqa: BLE001 -- a broken set-up counts as not handled
                why = f"harness: {type(e).__name__}: {e}"
            finally:
                for p in tmp.rglob("*"):            # chmod'ed folders must not block the clean-up
                    with contextlib.suppress(OSError):
                        p.chmod(0o700) if p.is_dir() and not p.is_symlink() else None
        if why is None:
            handled += 1
        else:
            failed.append((case, why))
        if verbose:
            print(f"{'ok  ' if why is None else 'FAIL'} {case.group:2d} {case.id}: {why or ''}", flush=True)
    for case, why in failed:
        print(f"not handled: [{case.group}] {case.id}: {why}")
    print(f"hostile cases handled: {handled}/{total}")
    return 0 if handled == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
