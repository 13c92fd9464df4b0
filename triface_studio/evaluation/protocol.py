"""Pairs of the evaluation protocol of Bilecen et al. (used by the paper's Table 1).

``eyeglasses``: identities without eyeglasses get eyeglasses from references that wear them.
``hair``:       black-haired identities get the hair of blonde references.

A data folder has the layout of celebamask-mini: ``images/NAME.(jpg|png)``, optional
``masks/NAME.png`` (CelebAMask-HQ class ids) and ``tags.csv`` with at least ``name``,
``eyeglasses`` (0/1) and ``hair_tone`` columns.  Pairing is deterministic given the seed: the
identities and references are each shuffled with ``numpy.random.default_rng(seed)`` (sorted by
name first) and paired in order, references cycling when there are fewer of them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = {
    # task: (attributes to transfer, identity rule, reference rule)
    "eyeglasses": ("eyeglasses",),
    "hair": ("hair",),
}
IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Pair:
    index: int
    identity: str            # name (file stem)
    reference: str
    identity_path: Path
    reference_path: Path
    identity_mask: Path | None
    reference_mask: Path | None


def read_tags(data: str | Path) -> list[dict]:
    data = Path(data)
    tags = data / "tags.csv"
    if not tags.is_file():
        raise ValueError(f"{data}: no tags.csv (expected images/, optional masks/ and tags.csv)")
    with open(tags, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"name", "eyeglasses", "hair_tone"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"{tags}: needs the columns {sorted(need)}")
    return rows


def _image_path(data: Path, name: str) -> Path | None:
    for ext in IMAGE_EXTS:
        p = data / "images" / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def _is_true(v: str) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes")


def roles(task: str, row: dict) -> tuple[bool, bool]:
    """(can be an identity, can be a reference) of one tags.csv row for ``task``."""
    if task == "eyeglasses":
        g = _is_true(row["eyeglasses"])
        return (not g, g)
    if task == "hair":
        tone = row["hair_tone"].strip().lower()
        hat = _is_true(row.get("hat", "0"))
        return (tone == "black" and not hat, tone == "blonde" and not hat)
    raise ValueError(f"unknown task {task!r}; use {' or '.join(TASKS)}")


def attribute_images(data: str | Path, task: str) -> list[Path]:
    """Every image of the folder that has the task's target attribute (the FID reference set)."""
    data = Path(data)
    out = []
    for row in read_tags(data):
        p = _image_path(data, row["name"])
        if p is not None and roles(task, row)[1]:
            out.append(p)
    return sorted(out)


SPLITS = ("heldout", "train", "all")


def split_names(data: str | Path, split: str = "all") -> set[str] | None:
    """Names of the parser's ``heldout`` (its recorded validation split) or ``train`` photos, or
    None for ``all``. A folder none of whose photos is in the split -> None (all of it)."""
    if split == "all":
        return None
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use {', '.join(SPLITS)}")
    import json

    from triface_studio.resources import resource_path

    path = resource_path("models", "parser", "split.json")
    if not path.exists():
        return None
    names = set(json.loads(path.read_text())["val" if split == "heldout" else "train"])
    have = {row["name"] for row in read_tags(data)}
    return (names & have) or None


def make_pairs(data: str | Path, task: str, limit: int | None = None, seed: int = 0,
               split: str = "all") -> list[Pair]:
    """The task's (identity, reference) pairs, deterministic for a seed, both drawn from
    ``split`` (see :func:`split_names`)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use {' or '.join(TASKS)}")
    data = Path(data)
    ids, refs = [], []
    keep = split_names(data, split)
    for row in read_tags(data):
        if _image_path(data, row["name"]) is None or (keep is not None and row["name"] not in keep):
            continue
        is_id, is_ref = roles(task, row)
        if is_id:
            ids.append(row["name"])
        if is_ref:
            refs.append(row["name"])
    if not ids or not refs:
        raise ValueError(f"{data}: the {task} task needs identities and references "
                         f"(found {len(ids)} and {len(refs)})")
    rng = np.random.default_rng(seed)
    ids_sorted = sorted(ids)
    refs_sorted = sorted(refs)
    ids = [ids_sorted[i] for i in rng.permutation(len(ids_sorted))]
    refs = [refs_sorted[i] for i in rng.permutation(len(refs_sorted))]
    n = len(ids) if limit is None else min(limit, len(ids))
    out = []
    for i in range(n):
        a, b = ids[i], refs[i % len(refs)]
        ma, mb = data / "masks" / f"{a}.png", data / "masks" / f"{b}.png"
        out.append(Pair(i, a, b, _image_path(data, a), _image_path(data, b),
                        ma if ma.is_file() else None, mb if mb.is_file() else None))
    return out
