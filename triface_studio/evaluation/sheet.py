"""``triface eval --task sheet``: one fixed contact sheet of 16 held-out edits to look at.

The 16 pairs are drawn from the parser's held-out split by a fixed rule (names in sorted
order, the first that qualify), so every version of the product is shown the same photos:

- 4 hair: black-haired identities (2 frontal, 2 turned at least ``TURNED_DEG`` of yaw) get the
  hair of blonde references;
- 4 eyeglasses: identities without glasses (2 frontal, 2 turned) get a reference's glasses;
- 3 half hair: hair from a reference with its right half subtracted by a painted mask;
- 3 nose and 2 lips, on identities that are not in the rows above.

Writes ``edits_contact_sheet.png`` (identity | reference | result, with a caption per row)
and ``edits_contact_sheet.json`` (the pairs, each edit's notes or error, and its realism
measures) into the output folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from triface_studio.core.files import atomic_write_bytes
from triface_studio.core.images import encode_png, load_image
from triface_studio.pipeline.exports import contact_sheet

from . import protocol, realism

TURNED_DEG = 12.0
TILE = 200


@dataclass(frozen=True)
class SheetPair:
    kind: str                # hair | eyeglasses | half hair | nose | lips
    identity: str
    reference: str
    attributes: tuple[str, ...]
    half_mask: bool = False


def _tags(data: Path) -> dict[str, dict]:
    return {r["name"]: r for r in protocol.read_tags(data)}


def choose_pairs(data: str | Path, yaw_of: Callable[[str], float | None]) -> list[SheetPair]:
    """The fixed 16 pairs (see the module docstring). ``yaw_of(name)``: the identity's yaw in
    degrees, or None when no face is found (the photo is skipped)."""
    data = Path(data)
    tags = _tags(data)
    names = sorted(protocol.split_names(data, "heldout") or tags)
    names = [n for n in names if protocol._image_path(data, n) is not None]
    used: set[str] = set()

    def pick(rule, turned: bool | None, count: int) -> list[str]:
        out = []
        for n in names:
            if len(out) == count:
                break
            if n in used or not rule(tags[n]):
                continue
            if turned is not None:
                y = yaw_of(n)
                if y is None or (abs(y) >= TURNED_DEG) != turned:
                    continue
            out.append(n)
            used.add(n)
        return out

    def refs(rule, count: int) -> list[str]:
        out = [n for n in names if rule(tags[n])][:count]
        return out or [n for n in names][:count]

    black = lambda r: protocol.roles("hair", r)[0]             # noqa: E731
    blonde = lambda r: protocol.roles("hair", r)[1]            # noqa: E731
    bare = lambda r: protocol.roles("eyeglasses", r)[0]        # noqa: E731
    glasses = lambda r: protocol.roles("eyeglasses", r)[1]     # noqa: E731
    anyone = lambda r: not protocol._is_true(r.get("hat", "0"))  # noqa: E731
    pairs: list[SheetPair] = []
    hair_refs, glass_refs = refs(blonde, 4), refs(glasses, 4)
    for i, n in enumerate(pick(black, False, 2) + pick(black, True, 2)):
        pairs.append(SheetPair("hair", n, hair_refs[i % len(hair_refs)], ("hair",)))
    for i, n in enumerate(pick(bare, False, 2) + pick(bare, True, 2)):
        pairs.append(SheetPair("eyeglasses", n, glass_refs[i % len(glass_refs)], ("eyeglasses",)))
    long_hair = lambda r: anyone(r) and float(r.get("hair_frac") or 0) > 0.12  # noqa: E731
    half_refs = [n for n in names if long_hair(tags[n]) and n not in used][:3]
    used.update(half_refs)
    for i, n in enumerate(pick(anyone, None, 3)):
        pairs.append(SheetPair("half hair", n, half_refs[i % len(half_refs)], ("hair",), half_mask=True))
    rest = pick(anyone, None, 5)
    others = [n for n in names if n not in used]
    for i, n in enumerate(rest):
        kind = "nose" if i < 3 else "lips"
        pairs.append(SheetPair(kind, n, others[(7 * i + 3) % len(others)], (kind,)))
    return pairs


def render_sheet(data: str | Path, out_dir: str | Path, pipe=None, log: Callable[[str], None] | None = None) -> dict:
    """Run the 16 edits and write the sheet (see the module docstring). Returns the JSON record."""
    from triface_studio.pipeline import EditError, EditPipeline, EditRequest, ReferenceSpec

    data, out_dir = Path(data), Path(out_dir)
    pipe = pipe or EditPipeline()
    images: dict[str, np.ndarray] = {}

    def image(name: str) -> np.ndarray:
        if name not in images:
            images[name] = load_image(protocol._image_path(data, name))
        return images[name]

    def yaw_of(name: str) -> float | None:
        try:
            return float(pipe.analyze(image(name), name, "identity").pose[0])
        except EditError:
            return None

    pairs = choose_pairs(data, yaw_of)
    rows, record = [], []
    for i, p in enumerate(pairs):
        ref_img = image(p.reference)
        mask = None
        if p.half_mask:
            fa = pipe.analyze(ref_img, p.reference, "reference")
            mask = np.zeros(fa.crop.shape[:2], np.float32)
            mask[:, fa.crop.shape[1] // 2:] = 1.0
        entry = {"kind": p.kind, "identity": p.identity, "reference": p.reference, "attributes": list(p.attributes)}
        try:
            res = pipe.run(EditRequest(identity=image(p.identity), identity_name=p.identity,
                                       references=[ReferenceSpec(ref_img, p.attributes, name=p.reference,
                                                                 user_mask=mask, mask_mode="subtract")]))
        except EditError as e:
            entry["error"] = str(e)
            fa_id = pipe.analyze(image(p.identity), p.identity, "identity")
            crop_ref = pipe.analyze(ref_img, p.reference, "reference").crop
            result = np.full_like(fa_id.crop, 40)
            cv2.putText(result, "refused", (150, 260), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 3)
            crop_id = fa_id.crop
        else:
            crop_id, crop_ref, result = res.identity.crop, res.references[0].crop, res.composite
            entry["notes"] = list(res.notes)
            lab_out = np.asarray(pipe.analyzer.parse(result))
            from triface_studio.core.semantics import attribute_classes

            entry.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in realism.realism_metrics(
                "hair" if "hair" in p.attributes else p.kind, crop_id, result, np.asarray(res.identity.labels),
                lab_out, attribute_classes(list(p.attributes)), crop_ref,
                np.asarray(res.references[0].labels), res.s_blend).items()})
        record.append(entry)
        rows.append(([crop_id, crop_ref, result], [f"{i + 1}. {p.kind}", None, None]))
        if log:
            log(f"[{i + 1}/{len(pairs)}] {p.kind}: {p.identity} <- {p.reference}"
                + (f": {entry['error']}" if "error" in entry else f"  broken {entry.get('looks_broken')}"))
    # two columns of 8 rows: pair k beside pair k + 8
    half = (len(rows) + 1) // 2
    cells = [rows[k][0] + (rows[k + half][0] if k + half < len(rows) else []) for k in range(half)]
    captions = [rows[k][1] + (rows[k + half][1] if k + half < len(rows) else []) for k in range(half)]
    sheet = contact_sheet(cells, cell=TILE, gap=4, background=(255, 255, 255), captions=captions)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "edits_contact_sheet.png", encode_png(sheet))
    atomic_write_bytes(out_dir / "edits_contact_sheet.json", (json.dumps(record, indent=2) + "\n").encode())
    return {"pairs": record, "sheet": str(out_dir / "edits_contact_sheet.png")}
