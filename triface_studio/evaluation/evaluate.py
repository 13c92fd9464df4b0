"""``triface eval``: run the protocol's edits and measure them.

Per pair (all on the 512 px crops: input crop I, edited crop O = ``EditResult.composite``):

- region R = pixels whose parser label is one of the task's classes on I or on O (union);
  "outside" = not R.  Labels: ``pipe.analyzer.parse`` on I and on O; when the analyser cannot
  parse an image (the relief stand-in only knows the data set's masks) the output's labels are
  the pipeline's blended semantics ``s_blend`` (``region_source`` says which).
- ``ssim_outside``: mean of the Gaussian SSIM map over outside pixels; ``l2_outside``: mean
  squared error over outside pixels and channels, images in [0, 1] (see :mod:`.metrics`).
- ``ssim_outside_isolated``: the same SSIM with R's input pixels copied into O first, so that an
  11x11 window straddling R's edge scores only what changed outside R (the common practice of
  blanking the edited region in both images; the plain measure also charges the edit's own pixels
  to the outside pixels within 5 px of R).
- ``success``: eyeglasses: at least ``MIN_GLASSES_PX`` eyeglass pixels in O's labels inside R;
  hair: the mean CIELAB colour of O's hair is closer to the reference's hair colour than I's was.
- ``label_drift_outside``: fraction of outside pixels whose parser label changed (identity drift).
- with ``rendered``: ``ssim_outside_t_com``/``l2_outside_t_com``, the same measures on the
  re-encoded tri-plane T^com rendered at the identity's camera (the 3D result, not the 2D composite), rendered
  at the request's render resolution (256) and upsampled to 512.
- ``ssim_outside_declared``/``l2_outside_declared``: the same outside R and everything the
  pipeline says it may change (``EditResult.edit_region`` and the refinement mask M^sde): the
  edit's own leakage, without the parser's disagreements about where the attribute is.
- ``sec_per_edit``: wall time of ``EditPipeline.run`` (analysis of new photos included).

- the realism measures of :mod:`.realism` (flat fill, bald scalp, seam contrast, foreign skin,
  no-op, parser agreement with where the edit put the attribute, parts kept, ``looks_broken``).

Pairs come from the parser's held-out split by default (``split="heldout"``: identities and
references the parser never trained on, so its labels on them are not memorised; nothing is
tuned on them), or from its training split / the whole folder.

Over the set: FID/KID between the edited crops and every image of the folder with the target
attribute, on the features named in the key (``fid_randproj32`` offline; ``fid_inception``
only with a user-supplied pytorch-fid checkpoint; ``kid_effnetlite0`` on ImageNet
EfficientNet-Lite0 features, see :mod:`.efficientnet`), and the same for the unedited inputs as a
baseline (``*_inputs``).  The real set is every photo of the folder with the attribute that is in
no pair.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from triface_studio.core.files import atomic_write_bytes
from triface_studio.core.images import encode_png, load_image, to_float
from triface_studio.core.semantics import EYEGLASSES, HAIR, attribute_classes
from triface_studio.pipeline.exports import contact_sheet

from . import metrics, protocol, realism
from .features import InceptionFeatures, RandomProjectionFeatures

MIN_GLASSES_PX = realism.MIN_GLASSES_PX     # one line for success and no-op
PAPER_TABLE1 = {"eyeglasses": {"ssim_outside": 0.9881, "l2_outside": 0.0049},
                "hair": {"ssim_outside": 0.9932, "l2_outside": 0.0038}}
CSV_FIELDS = ("index", "identity", "reference", "ok", "error", "ssim_outside", "l2_outside", "ssim_outside_isolated",
              "success", "glasses_px", "hair_dist_before", "hair_dist_after", "label_drift_outside", "region_frac",
              "region_source", "sec_per_edit", "ssim_outside_t_com", "l2_outside_t_com", "ssim_outside_declared",
              "l2_outside_declared") + realism.REALISM_FIELDS


def make_pipeline(tier: str, device: str = "cpu"):
    """An EditPipeline for ``tier``: bundled | neural | relief (the pipeline's test stand-in on
    aligned crops with the folder's masks; no 3D, for checking the protocol only)."""
    from triface_studio.pipeline import EditPipeline

    if tier == "relief":
        from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier

        return EditPipeline(tier=ReliefTier(device=device), device=device, analyzer=AlignedAnalyzer())
    return EditPipeline(tier=tier, device=device)


def load_labels(path: str | Path) -> np.ndarray:
    """A class-id mask (palette or grey PNG, CelebAMask-HQ ids) -> uint8 (H, W)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            a = np.asarray(im if im.mode in ("P", "L") else im.convert("L"))
    except OSError as e:
        raise ValueError(f"{path}: not a readable label mask ({e})") from None
    if a.max(initial=0) >= 19:
        raise ValueError(f"{path}: class ids must be 0-18, found {int(a.max())}")
    return a.astype(np.uint8)


def _mean_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    if mask.sum() < 20:
        return None
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float64)
    return lab[mask].mean(0)


def _dist(a, b) -> float:
    return float("nan") if a is None or b is None else float(np.linalg.norm(a - b))


def pair_metrics(task: str, inp: np.ndarray, out: np.ndarray, lab_in: np.ndarray, lab_out: np.ndarray,
                 ref: np.ndarray | None = None, lab_ref: np.ndarray | None = None,
                 declared: np.ndarray | None = None, rendered: np.ndarray | None = None,
                 placed: np.ndarray | None = None) -> dict:
    """The per-pair numbers (see the module docstring). Images uint8 (512, 512, 3), labels (512, 512).
    ``declared`` (bool (512, 512)): what the pipeline says it may change, for the ``*_declared``
    measures; ``rendered`` (uint8 image): T^com at the identity's camera, for the ``*_t_com`` ones;
    ``placed`` (labels (512, 512)): where the edit put each class (its blended semantics), for
    ``agree_iou``."""
    classes = np.array(sorted(attribute_classes(protocol.TASKS[task])))
    region = np.isin(lab_in, classes) | np.isin(lab_out, classes)
    outside = ~region
    a, b = to_float(inp), to_float(out)
    smap = metrics.ssim_map(a, b)
    row = {"ssim_outside": metrics.map_mean(smap, outside), "l2_outside": metrics.l2_masked(a, b, outside),
           "ssim_outside_isolated": metrics.ssim_isolated(a, b, outside),
           "label_drift_outside": float((lab_in != lab_out)[outside].mean()) if outside.any() else float("nan"),
           "region_frac": float(region.mean())}
    row.update(realism.realism_metrics(task, inp, out, lab_in, lab_out, classes, ref, lab_ref, placed))
    if declared is not None:
        undeclared = outside & ~np.asarray(declared, bool)
        row.update(ssim_outside_declared=metrics.map_mean(smap, undeclared),
                   l2_outside_declared=metrics.l2_masked(a, b, undeclared))
    if rendered is not None:
        r = to_float(rendered)
        row.update(ssim_outside_t_com=metrics.ssim(a, r, outside), l2_outside_t_com=metrics.l2_masked(a, r, outside))
    if task == "eyeglasses":
        px = int(((lab_out == EYEGLASSES) & region).sum())
        row.update(glasses_px=px, success=int(px >= MIN_GLASSES_PX))
    else:
        ref_c = _mean_lab(ref, lab_ref == HAIR) if ref is not None and lab_ref is not None else None
        before = _dist(_mean_lab(inp, lab_in == HAIR), ref_c)
        after = _dist(_mean_lab(out, lab_out == HAIR), ref_c)
        row.update(hair_dist_before=before, hair_dist_after=after,
                   success=int(bool(after < before)) if not (math.isnan(before) or math.isnan(after)) else 0)
    return row


def render_t_com(pipe, res, resolution: int = 256) -> np.ndarray:
    """The re-encoded tri-plane T^com rendered at the identity's camera (at ``resolution``, as
    the pipeline renders T^blend, bilinearly upsampled), uint8 (512, 512, 3)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        out = pipe.tier.render(res.t_com, res.identity.camera, resolution)
        rgb = F.interpolate(out.rgb[:, :3].float(), size=(512, 512), mode="bilinear", align_corners=False)
    rgb = rgb[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _labels(pipe, crop: np.ndarray, fallback: np.ndarray | None) -> tuple[np.ndarray, str]:
    try:
        return np.asarray(pipe.analyzer.parse(crop)), "parser"
    except ValueError:
        if fallback is None:
            raise
        return np.asarray(fallback), "s_blend"


def _nanmean(xs) -> float:
    xs = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else float("nan")


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, float):
        return round(v, 6)
    return v


def evaluate(task: str, data: str | Path, out_dir: str | Path, limit: int | None = None, seed: int = 0,
             tier: str = "bundled", device: str = "cpu", inception: str | None = None, pipe=None,
             sheet_rows: int = 16, rendered: bool = False, log: Callable[[str], None] | None = None,
             refine=None, split: str = "heldout") -> dict:
    """Run the protocol and write ``pairs.csv``, ``summary.json`` and ``contact_sheet.png``
    into ``out_dir`` (each written atomically). ``refine`` (a RefineSettings) chooses the
    refiner, e.g. SDEdit with a score model for the paper's ablation. Returns the summary."""
    from triface_studio.pipeline import EditError, EditRequest, ReferenceSpec, RefineSettings

    refine = refine or RefineSettings()

    data, out_dir = Path(data), Path(out_dir)
    pairs = protocol.make_pairs(data, task, limit=limit, seed=seed, split=split)
    inception_fx = InceptionFeatures(inception, device) if inception else None  # fail early on a bad file
    if pipe is None:
        pipe = make_pipeline(tier, device)
    pipe.tier  # noqa: B018 - load the models now: a missing tier is one clear EditError, not N failed pairs
    relief = type(pipe.analyzer).__name__ == "AlignedAnalyzer"
    attrs = protocol.TASKS[task]
    rows, inputs, outputs, sheet = [], [], [], []
    for p in pairs:
        inp, ref = load_image(p.identity_path), load_image(p.reference_path)
        if relief:
            for im, mpath in ((inp, p.identity_mask), (ref, p.reference_mask)):
                if mpath is None:
                    raise ValueError(f"the relief tier needs masks/ in {data} ({mpath} is missing)")
                pipe.analyzer.add(im, load_labels(mpath))
        row = {"index": p.index, "identity": p.identity, "reference": p.reference}
        t0 = time.perf_counter()
        try:
            res = pipe.run(EditRequest(identity=inp, identity_name=p.identity_path.name, seed=seed, device=device,
                                       refine=refine,
                                       references=[ReferenceSpec(ref, attrs, name=p.reference_path.name)]))
        except EditError as e:
            row.update(ok=0, error=str(e), success=0, sec_per_edit=time.perf_counter() - t0)
            rows.append(row)
            if log:
                log(f"[{p.index + 1}/{len(pairs)}] {p.identity} <- {p.reference}: {e}")
            continue
        sec = time.perf_counter() - t0
        crop_in, crop_out = res.identity.crop, res.composite
        lab_in = np.asarray(res.identity.labels) if getattr(res.identity, "labels", None) is not None \
            else pipe.analyzer.parse(crop_in)
        lab_out, src = _labels(pipe, crop_out, res.s_blend)
        ref_fa = res.references[0] if res.references else None
        lab_ref = getattr(ref_fa, "labels", None) if ref_fa is not None else None
        declared = (np.asarray(res.edit_region) > 0.5) | (np.asarray(res.sde_mask) > 0.01)
        t_com = render_t_com(pipe, res, getattr(res.request, "render_resolution", 256)
                             if res.request else 256) if rendered else None
        row.update(ok=1, error="", region_source=src, sec_per_edit=sec,
                   **pair_metrics(task, crop_in, crop_out, lab_in, lab_out,
                                  ref_fa.crop if ref_fa is not None else None, lab_ref,
                                  declared=declared, rendered=t_com, placed=res.s_blend))
        rows.append(row)
        inputs.append(crop_in)
        outputs.append(crop_out)
        if len(sheet) < sheet_rows:
            sheet.append((crop_in, ref_fa.crop if ref_fa is not None else ref, crop_out))
        if log:
            log(f"[{p.index + 1}/{len(pairs)}] {p.identity} <- {p.reference}: ssim_out {row['ssim_outside']:.4f} "
                f"l2_out {row['l2_outside']:.5f} success {row['success']} flat {row['flat_fill']:.3f} "
                f"seam {row['seam_contrast']:.2f} foreign {row['foreign_skin']:.3f} no_op {row['no_op']} "
                f"agree {row['agree_iou']:.2f} broken {row['looks_broken']} {sec:.1f}s")

    ok = [r for r in rows if r.get("ok")]
    summary = {
        "task": task, "pairs": len(rows), "edits_ok": len(ok),
        "ssim_outside": _nanmean(r["ssim_outside"] for r in ok),
        "l2_outside": _nanmean(r["l2_outside"] for r in ok),
        "ssim_outside_isolated": _nanmean(r["ssim_outside_isolated"] for r in ok),
        "success_rate": (sum(r.get("success", 0) for r in rows) / len(rows)) if rows else float("nan"),
        "sec_per_edit": _nanmean(r["sec_per_edit"] for r in rows),
        "sec_per_edit_median": statistics.median(r["sec_per_edit"] for r in rows) if rows else float("nan"),
        "label_drift_outside": _nanmean(r["label_drift_outside"] for r in ok),
        "ssim_outside_declared": _nanmean(r["ssim_outside_declared"] for r in ok),
        "l2_outside_declared": _nanmean(r["l2_outside_declared"] for r in ok),
        **({"ssim_outside_t_com": _nanmean(r["ssim_outside_t_com"] for r in ok),
            "l2_outside_t_com": _nanmean(r["l2_outside_t_com"] for r in ok)} if rendered and ok else {}),
        **{k: _nanmean(r[k] for r in ok) for k in realism.REALISM_FIELDS},
        "no_op_count": sum(r["no_op"] for r in ok), "looks_broken_count": sum(r["looks_broken"] for r in ok),
        "visible_rate": (sum(1 - r["no_op"] for r in ok) / len(rows)) if rows else float("nan"),
        "foreign_skin_max": max((r["foreign_skin"] for r in ok if r["foreign_skin"] == r["foreign_skin"]),
                                default=float("nan")),
        "flat_fill_max": max((r["flat_fill"] for r in ok), default=float("nan")),
        "split": split,
        "tier": getattr(pipe, "tier_name", tier), "refiner": refine.refiner, "device": device, "seed": seed,
        "data": str(data),
        "region": "union of the task's parser classes on input and output (512 px crops); metrics outside it",
        "paper_table1": PAPER_TABLE1[task],
    }
    used = {q.identity for q in pairs} | {q.reference for q in pairs}
    attr_all = protocol.attribute_images(data, task)
    attr_paths = [q for q in attr_all if q.stem not in used]
    summary["fid_real_set"] = "photos with the attribute in no pair"
    if len(attr_paths) < 2:     # a tiny folder: every photo with the attribute, the pairs' own included
        attr_paths = attr_all
        summary["fid_real_set"] = "every photo with the attribute (too few outside the pairs)"
    summary["fid_reference_images"] = len(attr_paths)
    if len(outputs) >= 2 and len(attr_paths) >= 2:
        real = [cv2.resize(load_image(q), (512, 512), interpolation=cv2.INTER_AREA) for q in attr_paths]
        extractors = [("randproj32", RandomProjectionFeatures())]
        try:
            from .efficientnet import EfficientNetFeatures

            extractors.append(("effnetlite0", EfficientNetFeatures(device)))
        except ValueError as e:  # weights not installed: the other measures still stand
            summary["kid_effnetlite0_note"] = str(e)
        if inception_fx is not None:
            extractors.append(("inception", inception_fx))
        for name, fx in extractors:
            f_real, f_out, f_in = fx(real), fx(outputs), fx(inputs)
            if name != "effnetlite0":   # a 1280-d covariance from ~20 images says nothing: KID only
                summary[f"fid_{name}"] = metrics.fid(f_out, f_real)
                summary[f"fid_{name}_inputs"] = metrics.fid(f_in, f_real)
            summary[f"kid_{name}"] = metrics.kid(f_out, f_real)
            if name == "effnetlite0":
                summary[f"kid_{name}_se"] = metrics.kid_standard_error(f_out, f_real)
            summary[f"kid_{name}_inputs"] = metrics.kid(f_in, f_real)
        summary["fid_note"] = ("fid_randproj32/kid_randproj32: a fixed random projection of 32x32 images, NOT "
                               "comparable with published FIDs; kid_effnetlite0: unbiased KID on ImageNet "
                               "EfficientNet-Lite0 features (x1000 in the README), comparable between versions of "
                               "this project only; kid_effnetlite0_se: its jackknife standard error over the edits "
                               "(which edits happen to be in the set); *_inputs: the unedited inputs vs the same set")
    summary = {k: _clean(v) for k, v in summary.items()}

    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (round(r[k], 6) if isinstance(r.get(k), float) else r[k]))
                    for k in CSV_FIELDS})
    atomic_write_bytes(out_dir / "pairs.csv", buf.getvalue().encode())
    atomic_write_bytes(out_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    if sheet:
        atomic_write_bytes(out_dir / "contact_sheet.png", encode_png(contact_sheet(sheet, cell=160, background=(255, 255, 255))))
    return summary
