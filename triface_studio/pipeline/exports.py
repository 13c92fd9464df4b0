"""Exports of an edit: orbit views, video, mesh and the CLI's file set.

Every export is atomic: files are written into a temporary folder beside the destination and
moved into place only after everything succeeded, so a failed or cancelled export leaves no
partial files behind.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import re
import secrets
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from triface_studio.core import triplane
from triface_studio.core.files import atomic_path, atomic_write_bytes, name_max, sync_files
from triface_studio.core.images import encode_indexed_png, encode_png, to_uint8, write_image_bytes
from triface_studio.core.rendering import activate_density, decode_points
from triface_studio.core.semantics import PALETTE, colorize

from .errors import Cancelled, EditError
from .requests import DEFAULT_MESH_RESOLUTION, DEFAULT_PITCH_RANGE, DEFAULT_VIEW_RESOLUTION, DEFAULT_YAW_RANGE


# -- output folders --------------------------------------------------------------------------
#: staging folders live beside the destination as ``.triface-stage-PID-XXXXXXXX`` (and the folder
#: being replaced, for a moment, as ``.triface-old-PID-XXXXXXXX``): short names, whatever the
#: destination is called, and the process id tells a later run which ones a killed run left
STAGE_RE = re.compile(r"^\.triface-(stage|old)-(\d+)-[0-9a-f]{8}$")


def _stage_name(kind: str = "stage") -> str:
    return f".triface-{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def listed_files(out: Path) -> set[str] | None:
    """The files an edit.json in ``out`` says its edit wrote; None when there is no such edit.json."""
    try:
        doc = json.loads((out / "edit.json").read_text())
    except (OSError, ValueError):
        return None
    files = doc.get("files") if isinstance(doc, dict) and doc.get("format") == "triface-edit" else None
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else None


def foreign_files(out: Path) -> list[str]:
    """Files in ``out`` (relative paths) that its edit.json does not list: the user's, not the edit's."""
    listed = listed_files(out) or set()
    found = []
    for dirpath, _dirs, files in os.walk(out):
        for n in files:
            rel = os.path.relpath(os.path.join(dirpath, n), out)
            if rel not in listed:
                found.append(rel)
    return sorted(found)


def check_output_dir(out_dir: str | os.PathLike, overwrite: bool = False, owned: bool = False) -> Path:
    """Fail early (EditError) when ``out_dir`` cannot be made the output folder; creates nothing.
    -> the folder as an absolute path (symbolic links resolved).

    Checked: the name fits the file system; a symbolic link points somewhere; the first existing
    folder on the way can be written (the staging folder is made beside ``out_dir``); with
    ``owned`` (an edit's folder, replaced as a whole) an existing folder holds only the files its
    edit.json lists, unless ``overwrite``."""
    given = Path(out_dir).expanduser()
    if given.is_symlink() and not given.exists():
        raise EditError(f"output folder {given} is a symbolic link to {os.readlink(given)}, which does not exist")
    out = Path(os.path.realpath(given.absolute()))
    if out.exists() and not out.is_dir():
        raise EditError(f"output folder {out} exists and is not a folder")
    probe = _existing_ancestor(out.parent)
    if not probe.is_dir():
        raise EditError(f"output folder {out}: {probe} is not a folder")
    limit = name_max(probe)
    for part in out.relative_to(probe).parts:
        if len(os.fsencode(part)) > limit:
            raise EditError(f"output folder {out}: the name {part[:24]}... is {len(os.fsencode(part))} bytes "
                            f"long; this file system allows at most {limit}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EditError(f"output folder {out} is not writable (no write permission in {probe})")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".triface-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise EditError(f"output folder {out} is not writable ({e.strerror or e} in {probe})") from None
    foreign = foreign_files(out) if owned and out.is_dir() else []      # one walk of the folder
    if foreign and out in _protected_folders():
        raise EditError(f"output folder {out} is your home, current or root folder and holds other files; "
                        f"an edit replaces its folder as a whole, so give it a folder of its own")
    if not overwrite:
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise EditError(f"output folder {out} holds files its edit.json does not list ({shown}); the folder "
                            f"is replaced as a whole, so choose another one or pass --overwrite")
    return out


def _protected_folders() -> set[Path]:
    """Folders an edit never replaces, even with --overwrite."""
    found = {Path("/")}
    for get in (Path.home, Path.cwd):
        try:
            found.add(Path(os.path.realpath(get())))
        except (OSError, RuntimeError, KeyError):
            pass
    return found


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove staging folders that a killed run left in ``folder`` (their process is gone)."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = STAGE_RE.match(p.name)
        if not m or int(m.group(2)) == os.getpid() or _alive(int(m.group(2))):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                 # someone else's process: alive
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic rename (Linux renameat2 RENAME_EXCHANGE); False
    where the system or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out``; an old ``out`` is kept until the swap succeeded."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if _exchange(tmp, out):          # tmp now holds the old folder
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = out.with_name(_stage_name("old"))
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def replaced_dir(out_dir: str | os.PathLike, overwrite: bool = False):
    """Yield an empty staging folder beside ``out_dir``; on success it *becomes* ``out_dir`` in
    one rename (the old folder, if any, is removed only after that), on any error or signal it is
    removed and ``out_dir`` is untouched.  Staging left by killed runs is removed first."""
    out = check_output_dir(out_dir, overwrite=overwrite, owned=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out.parent)
        tmp = out.parent / _stage_name()
        tmp.mkdir(mode=0o777)
    except OSError as e:
        raise EditError(f"output folder {out} cannot be created ({e.strerror or e})") from None
    try:
        yield tmp
        try:
            _swap_in(tmp, out)
        except OSError as e:
            raise EditError(f"output folder {out} could not be replaced ({e.strerror or e}); "
                            f"it was left as it was") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_dir(out_dir: str | os.PathLike):
    """Yield a temporary folder; on success move its contents into ``out_dir`` (files replace
    files of the same name, folders replace folders), on any error remove it.  For exports into a
    folder the user keeps other things in (the app's export dialog); an edit's own folder is
    replaced as a whole by :func:`replaced_dir`."""
    out = check_output_dir(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out.parent)
    tmp = out.parent / _stage_name()
    tmp.mkdir(mode=0o777)
    try:
        yield tmp
        if not out.exists():
            os.rename(tmp, out)
            return
        for item in sorted(tmp.iterdir()):
            dest = out / item.name
            if item.is_dir() and dest.exists():
                _swap_in(item, dest)
            else:
                os.replace(item, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("the export was cancelled")


# -- views -------------------------------------------------------------------------------------
def orbit_path(frames: int, kind: str = "turntable", yaw_range: float = DEFAULT_YAW_RANGE,
               pitch_range: float = DEFAULT_PITCH_RANGE) -> list[tuple[float, float]]:
    """Camera poses (yaw, pitch) in degrees for an orbit of ``frames`` views.

    ``turntable``: an ellipse, yaw +-yaw_range and pitch +-pitch_range, one full loop;
    ``yaw``: a left-right sweep at pitch 0; ``pitch``: an up-down sweep at yaw 0.
    """
    n = int(frames)
    if n <= 0:
        return []
    if kind == "turntable":
        return [(yaw_range * math.sin(2 * math.pi * i / n), pitch_range * math.cos(2 * math.pi * i / n))
                for i in range(n)]
    ts = [0.0] if n == 1 else [-1 + 2 * i / (n - 1) for i in range(n)]
    if kind == "yaw":
        return [(yaw_range * t, 0.0) for t in ts]
    if kind == "pitch":
        return [(0.0, pitch_range * t) for t in ts]
    raise ValueError(f"orbit kind must be turntable, yaw or pitch, not {kind!r}")


def iter_views(pipe, asset, poses, resolution: int = 256, semantic: bool = True, transparent: bool = False,
               progress: Callable[[float], None] | None = None, cancel: threading.Event | None = None):
    """Render the poses one view at a time: yields (rgb uint8, labels uint8 or None); every pose
    is checked before the first render."""
    from .requests import check_float, check_int

    resolution = check_int(resolution, "view_resolution")
    poses = [(check_float(y, "yaw"), check_float(p, "pitch")) for y, p in poses]
    return _views(pipe, asset, poses, resolution, semantic, transparent, progress, cancel)


def _views(pipe, asset, poses, resolution, semantic, transparent, progress, cancel):
    n = max(len(poses), 1)
    for i, (yaw, pitch) in enumerate(poses):
        _check(cancel)
        sub = None
        if cancel is not None or progress is not None:
            def sub(f, i=i):
                _check(cancel)
                if progress is not None:
                    progress((i + f) / n)
        yield pipe.render_view(asset, yaw, pitch, resolution, semantic=semantic, progress=sub,
                               transparent=transparent)


#: zlib level of exported views: level 1 costs ~30 % less time than 3 for ~10 % more bytes, and a
#: turntable writes two PNGs per frame
VIEW_PNG_LEVEL = 1


def _write_view(folder: Path, i: int, view, rgb: bool, semantic: bool) -> list[Path]:
    """One view's PNGs, written straight into ``folder`` (a staging folder: the export appears
    as a whole or not at all, and :func:`_write_views` flushes it once; the semantic map as a
    palette PNG in the project palette, which looks the same at a third of the cost)."""
    im, labels = view
    out = []
    if rgb:
        out.append((folder / f"rgb_{i:04d}.png", encode_png(im, VIEW_PNG_LEVEL)))
    if semantic and labels is not None:
        idx = np.clip(np.asarray(labels), 0, len(PALETTE) - 1).astype(np.uint8)
        out.append((folder / f"semantic_{i:04d}.png", encode_indexed_png(idx, PALETTE, VIEW_PNG_LEVEL)))
    for p, data in out:
        write_image_bytes(p, data, atomic=False)
    return [p for p, _ in out]


def _write_views(folder: Path, views, rgb: bool, semantic: bool) -> list[Path]:
    """Write views as they come (an iterable: rendering the next view overlaps the PNG encoding
    of the last one, on one writer thread that is joined before this returns or raises)."""
    from concurrent.futures import ThreadPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="triface-png") as pool:
        futures = [pool.submit(_write_view, folder, i, v, rgb, semantic) for i, v in enumerate(views)]
        paths = [p for f in futures for p in f.result()]
    sync_files(paths)
    return paths


def export_views(pipe, asset, out_dir, poses, resolution: int = 256, rgb: bool = True, semantic: bool = True,
                 transparent: bool = False, progress: Callable[[float], None] | None = None,
                 cancel: threading.Event | None = None) -> list[Path]:
    """Render ``poses`` and write ``out_dir/views/rgb_0000.png`` and ``semantic_0000.png`` ...
    atomically (the views folder is replaced as a whole)."""
    views = iter_views(pipe, asset, poses, resolution, semantic, transparent, progress, cancel)
    out = Path(out_dir)
    with staged_dir(out) as tmp:
        rel = [p.relative_to(tmp) for p in _write_views(tmp / "views", views, rgb, semantic)]
    return [out / r for r in rel]


# -- video -----------------------------------------------------------------------------------
VIDEO_FPS = 12


def export_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = VIDEO_FPS) -> Path:
    """Write frames (uint8 (H, W, 3)) as a .gif or .mp4 (imageio / imageio-ffmpeg), atomically.
    Every frame lasts 1/fps s: N frames play for N/fps seconds in either format."""
    import imageio.v2 as imageio

    path = Path(path)
    if not (isinstance(fps, (int, float)) and 1 <= fps <= 60):
        raise EditError(f"the frame rate must be 1 to 60 frames per second, not {fps!r}")
    frames = [np.ascontiguousarray(f[..., :3]) for f in frames]
    if not frames:
        raise EditError("a video needs at least one frame")
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise EditError(f"{path}: videos are written as .gif or .mp4")
    with atomic_path(path, suffix) as tmp:
        if suffix == ".gif":
            # imageio's GIF writer (Pillow) takes the delay in milliseconds; 1/fps there meant 0 ms,
            # which viewers play as fast as they can (or at their own default).
            imageio.mimsave(tmp, frames, format="GIF", duration=1000.0 / fps, loop=0)
        else:
            h, w = frames[0].shape[:2]
            if h % 2 or w % 2:  # yuv420p needs even sizes
                frames = [f[: h - h % 2, : w - w % 2] for f in frames]
            with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=1) as wr:
                for f in frames:
                    wr.append_data(f)
    return path


# -- mesh --------------------------------------------------------------------------------------
@torch.no_grad()
def sample_density(tier, asset, resolution: int = 128, chunk: int = 262144):
    """Density and colour of ``asset`` on a resolution^3 grid filling the box.
    -> (density (R, R, R) [x, y, z] float32, grid coordinates (R,))"""
    planes = asset.planes.to(tier.device if hasattr(tier, "device") else "cpu")
    dec = tier.decoder
    opts = getattr(tier, "render_options", None)
    box_warp = getattr(opts, "box_warp", 1.0)
    half = triplane.BOX_HALF * box_warp
    t = torch.linspace(-half, half, resolution, device=planes.device)
    X, Y, Z = torch.meshgrid(t, t, t, indexing="ij")
    pts = torch.stack([X, Y, Z], -1).reshape(-1, 3)
    act = getattr(dec, "density_activation", "softplus")
    dens = torch.empty(pts.shape[0])
    for s in range(0, pts.shape[0], chunk):
        p = pts[s:s + chunk][None]
        out = decode_points(planes, dec, p, torch.zeros_like(p), box_warp)
        dens[s:s + chunk] = activate_density(out.density.float(), act).reshape(-1).cpu()
    return dens.reshape(resolution, resolution, resolution).numpy(), t.cpu().numpy()


@torch.no_grad()
def _vertex_colours(tier, asset, verts: np.ndarray) -> np.ndarray:
    planes = asset.planes.to(tier.device if hasattr(tier, "device") else "cpu")
    dec = tier.decoder
    opts = getattr(tier, "render_options", None)
    box_warp = getattr(opts, "box_warp", 1.0)
    cols = []
    v = torch.from_numpy(verts.astype(np.float32)).to(planes.device)
    for s in range(0, v.shape[0], 262144):
        p = v[s:s + 262144][None]
        out = decode_points(planes, dec, p, box_warp=box_warp)       # looking at the face
        cols.append(out.rgb[0, :, :3].float().cpu())
    c = torch.cat(cols).numpy()
    if c.min() < -0.05:  # features in [-1, 1] (EG3D's raw colour) -> [0, 1]
        c = (c + 1) / 2
    return to_uint8(np.clip(c, 0, 1))


def extract_mesh(tier, asset, resolution: int = 128, level: float | None = None):
    """Marching cubes on the density grid -> trimesh.Trimesh with vertex colours (world units)."""
    import trimesh
    from skimage import measure

    dens, t = sample_density(tier, asset, resolution)
    if level is None:
        hi = float(dens.max())
        level = 10.0 if hi > 20.0 else 0.5 * hi
    if not (dens.min() < level < dens.max()):
        raise EditError("the tri-plane has no surface to mesh (its density is empty)")
    spacing = float(t[1] - t[0])
    verts, faces, normals, _ = measure.marching_cubes(dens, level=level, spacing=(spacing,) * 3)
    verts = verts + t[0]
    colours = _vertex_colours(tier, asset, verts)
    # marching cubes on an [x, y, z] grid winds faces inward for a density (inside = high)
    mesh = trimesh.Trimesh(verts, faces[:, ::-1], vertex_colors=colours, process=False)
    return mesh


def export_mesh(pipe, asset, path: str | os.PathLike, resolution: int = 128) -> Path:
    """Write ``asset``'s surface as .ply or .obj (vertex colours from the decoder), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".ply", ".obj"):
        raise EditError(f"{path}: meshes are written as .ply or .obj")
    from .requests import check_int

    mesh = extract_mesh(pipe.tier, asset, check_int(resolution, "mesh_resolution"))
    data = mesh.export(file_type=suffix[1:])
    atomic_write_bytes(path, data if isinstance(data, bytes) else data.encode())
    return path


# -- the CLI's file set ------------------------------------------------------------------------
def versions() -> dict:
    import numpy
    import triface_studio

    return {"triface_studio": triface_studio.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def write_exports(folder: Path, pipe, asset, poses, resolution: int = 256, rgb: bool = True, semantic: bool = True,
                  transparent: bool = False, video: str | None = None, fps: float = VIDEO_FPS, mesh: bool = False,
                  mesh_resolution: int = 128, progress: Callable[[str, float], None] | None = None,
                  cancel: threading.Event | None = None) -> tuple[list[str], dict]:
    """Render ``poses`` of ``asset`` into ``folder``: ``views/rgb_NNNN.png`` (``rgb``, or a video),
    ``views/semantic_NNNN.png`` (``semantic``), ``orbit.gif|mp4`` (``video``), ``mesh.ply``
    (``mesh``).  ``progress(stage, fraction of the whole export)``.
    -> (the written files relative to ``folder``, timings)"""
    import time

    def report(stage, f):
        _check(cancel)
        if progress is not None:
            progress(stage, f)

    written, timings = [], {}
    if poses and (rgb or semantic or video):
        t0 = time.perf_counter()
        frames: list[np.ndarray] = []        # kept for the video only

        def keeping(views):
            for v in views:
                if video:
                    frames.append(v[0])
                yield v

        # views are encoded while the next one renders (as in export_views)
        views = iter_views(pipe, asset, poses, resolution, semantic, transparent,
                           lambda f: report("views", 0.8 * f), cancel)
        for p in _write_views(folder / "views", keeping(views), rgb or bool(video), semantic):
            written.append(str(p.relative_to(folder)))
        timings["views"] = time.perf_counter() - t0
        timings["views_per_frame"] = timings["views"] / len(poses)
        if video:
            report("video", 0.85)
            t0 = time.perf_counter()
            export_video(frames, folder / f"orbit.{video}", fps=fps)
            written.append(f"orbit.{video}")
            timings["video"] = time.perf_counter() - t0
    elif video:
        raise EditError("a video needs views (--views N)")
    if mesh:
        report("mesh", 0.9)
        t0 = time.perf_counter()
        export_mesh(pipe, asset, folder / "mesh.ply", mesh_resolution)
        written.append("mesh.ply")
        timings["mesh"] = time.perf_counter() - t0
    _check(cancel)
    return written, timings


def export_result(pipe, asset, result, out_dir, poses, resolution: int = 256, rgb: bool = True,
                  semantic: bool = True, transparent: bool = False, video: str | None = None,
                  fps: float = VIDEO_FPS, single_image: bool = True, mesh: bool = False, mesh_resolution: int = 128,
                  progress: Callable[[str, float], None] | None = None,
                  cancel: threading.Event | None = None) -> list[Path]:
    """The app's export into a folder the user keeps other things in: :func:`write_exports` and,
    with ``single_image``, the edited photo as ``edited.png``; staged and moved in only when all
    of it succeeded (files of the same names are replaced, a ``views/`` folder as a whole)."""
    with staged_dir(out_dir) as tmp:
        names, _ = write_exports(tmp, pipe, asset, poses, resolution, rgb, semantic, transparent, video, fps, mesh,
                                 mesh_resolution, progress, cancel)
        if single_image and result is not None:
            (tmp / "edited.png").write_bytes(encode_png(np.ascontiguousarray(result.composite_full)))
            names.append("edited.png")
        _check(cancel)
    if progress is not None:
        progress("done", 1.0)
    return [Path(os.path.realpath(Path(out_dir).absolute())) / n for n in names]


def write_edit_outputs(result, out_dir, pipe=None, views: int = 0, yaw_range: float = DEFAULT_YAW_RANGE,
                       pitch_range: float = DEFAULT_PITCH_RANGE, view_resolution: int = DEFAULT_VIEW_RESOLUTION,
                       orbit: str = "turntable", mesh: bool = False, mesh_resolution: int = DEFAULT_MESH_RESOLUTION,
                       video: str | None = None,
                       extra: dict | None = None, progress: Callable[[str, float], None] | None = None,
                       cancel: threading.Event | None = None, overwrite: bool = False) -> list[Path]:
    """Write the CLI's file set into ``out_dir`` atomically:

    edited.png, edited_crop.png, coarse.png, semantic.png, labels.png, mask_sde.png,
    views/rgb_NNNN.png + views/semantic_NNNN.png (``views`` > 0), mesh.ply (``mesh``),
    orbit.gif / orbit.mp4 (``video`` = "gif" | "mp4"), edit.json.

    The folder belongs to the edit: it is staged beside ``out_dir`` and swapped in as a whole, so
    afterwards it holds exactly what the new edit.json lists (stale exports of an earlier run are
    gone).  A folder holding files its edit.json does not list is refused unless ``overwrite``.
    """
    from .requests import request_to_json, validate_exports

    clean = validate_exports(views, view_resolution, yaw_range, pitch_range, orbit, mesh, mesh_resolution, video)
    views, view_resolution, mesh_resolution = clean["views"], clean["view_resolution"], clean["mesh_resolution"]
    timings = dict(result.timings)
    out = check_output_dir(out_dir, overwrite=overwrite, owned=True)
    written: list[str] = []
    with replaced_dir(out, overwrite=overwrite) as tmp:
        crop = result.composite
        if result.alpha is not None:
            crop = np.concatenate([crop, to_uint8(result.alpha)[..., None]], -1)
        files = {
            "edited.png": result.composite_full,
            "edited_crop.png": crop,
            "coarse.png": to_uint8(result.coarse),
            "semantic.png": colorize(result.s_blend),
            "labels.png": np.ascontiguousarray(result.s_blend.astype(np.uint8)),
            "mask_sde.png": to_uint8(result.sde_mask),
        }
        for name, im in files.items():
            _check(cancel)
            (tmp / name).write_bytes(encode_png(im))
            written.append(name)
        if views > 0 and pipe is None:
            raise EditError("rendering views needs the pipeline")
        if mesh and pipe is None:
            raise EditError("exporting a mesh needs the pipeline")
        names, times = write_exports(tmp, pipe, result.t_com, orbit_path(views, orbit, yaw_range, pitch_range),
                                     view_resolution, video=video, mesh=mesh, mesh_resolution=mesh_resolution,
                                     progress=progress, cancel=cancel)
        written += names
        timings.update(times)
        _check(cancel)
        doc = {
            "format": "triface-edit", "format_version": 1,
            "request": request_to_json(result.request, extra) if result.request is not None else None,
            "exports": {"views": views, "yaw_range": yaw_range, "pitch_range": pitch_range, "orbit": orbit,
                        "view_resolution": view_resolution, "mesh": mesh, "mesh_resolution": mesh_resolution,
                        "video": video},
            "versions": versions(),
            "timings": {k: round(float(v), 4) for k, v in timings.items()},
            "notes": list(result.notes),
            "files": sorted(written + ["edit.json"]),
        }
        (tmp / "edit.json").write_text(json.dumps(doc, indent=2) + "\n")
    return [out / w for w in sorted(written + ["edit.json"])]


def contact_sheet(rows, cell: int = 192, gap: int = 4, background=(24, 24, 24), captions=None) -> np.ndarray:
    """Tile rows of images (each uint8 (H, W, 3), any size) into one sheet, every image
    resized to ``cell`` x ``cell``: e.g. rows of (input, reference, result, view 1, 2, 3).
    ``captions``: rows of texts (or None) written on a dark strip at the top of their cell."""
    from PIL import Image

    rows = [list(r) for r in rows]
    captions = [list(c or []) for c in (captions or [])]
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    ncol = max(len(r) for r in rows)
    H = len(rows) * cell + (len(rows) + 1) * gap
    W = ncol * cell + (ncol + 1) * gap
    sheet = np.empty((H, W, 3), np.uint8)
    sheet[:] = background
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            a = np.asarray(im)[..., :3]
            t = np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((cell, cell), Image.LANCZOS))
            text = captions[i][j] if i < len(captions) and j < len(captions[i]) else None
            if text:
                t = _captioned(t, text)
            y, x = gap + i * (cell + gap), gap + j * (cell + gap)
            sheet[y:y + cell, x:x + cell] = t
    return sheet


def _captioned(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = tile.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out
