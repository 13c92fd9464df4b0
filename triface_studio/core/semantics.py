"""The 19 semantic classes of CelebAMask-HQ, their palette, the BiSeNet order, and the
user-facing attributes (sets of classes) that an artist picks from.

Class ids everywhere in TriFace Studio are the CelebAMask-HQ ids below.  The public BiSeNet
face-parsing checkpoints use another order; convert with :func:`from_bisenet` / :func:`to_bisenet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_CLASSES = 19

CLASS_NAMES: tuple[str, ...] = (
    "background", "skin", "nose", "eyeglasses", "l_eye", "r_eye", "l_brow", "r_brow",
    "l_ear", "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "earring", "necklace",
    "neck", "cloth",
)
CLASS_ID = {name: i for i, name in enumerate(CLASS_NAMES)}

BACKGROUND, SKIN, NOSE, EYEGLASSES = 0, 1, 2, 3
L_EYE, R_EYE, L_BROW, R_BROW, L_EAR, R_EAR = 4, 5, 6, 7, 8, 9
MOUTH, U_LIP, L_LIP, HAIR, HAT, EARRING, NECKLACE, NECK, CLOTH = 10, 11, 12, 13, 14, 15, 16, 17, 18

# RGB palette (uint8), one row per class id; chosen for legibility on a dark UI.
PALETTE = np.array(
    [
        (0, 0, 0), (204, 153, 128), (255, 180, 60), (40, 220, 240), (60, 90, 255),
        (120, 60, 255), (150, 90, 40), (110, 70, 30), (255, 120, 170), (220, 80, 140),
        (255, 60, 60), (230, 30, 90), (180, 20, 60), (240, 210, 70), (60, 200, 90),
        (255, 255, 140), (170, 255, 255), (230, 190, 160), (70, 110, 160),
    ],
    dtype=np.uint8,
)

# zllrunning/face-parsing.PyTorch (BiSeNet, ``79999_iter.pth``) class order.
BISENET_NAMES: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eyeglasses", "l_ear", "r_ear",
    "earring", "nose", "mouth", "u_lip", "l_lip", "neck", "necklace", "cloth", "hair", "hat",
)
#: ``TO_BISENET[celebamask_id] == bisenet_id``
TO_BISENET = np.array([BISENET_NAMES.index(n) for n in CLASS_NAMES], dtype=np.int64)
#: ``FROM_BISENET[bisenet_id] == celebamask_id``
FROM_BISENET = np.argsort(TO_BISENET)

# Horizontal flip of a face swaps left and right classes.
FLIP_PERMUTATION = np.arange(NUM_CLASSES)
for _a, _b in ((L_EYE, R_EYE), (L_BROW, R_BROW), (L_EAR, R_EAR)):
    FLIP_PERMUTATION[_a], FLIP_PERMUTATION[_b] = _b, _a


def to_bisenet(labels: np.ndarray) -> np.ndarray:
    """Map CelebAMask-HQ class ids to BiSeNet ids (any integer array)."""
    return TO_BISENET[labels]


def from_bisenet(labels: np.ndarray) -> np.ndarray:
    """Map BiSeNet class ids to CelebAMask-HQ ids (any integer array)."""
    return FROM_BISENET[labels]


def flip_labels(labels: np.ndarray) -> np.ndarray:
    """Mirror a label map left-right and swap the left/right classes. Shape: (..., H, W)."""
    return FLIP_PERMUTATION[labels[..., ::-1]]


@dataclass(frozen=True)
class Attribute:
    """A user-facing attribute: a name, the classes it covers and an icon name (qtawesome)."""

    name: str
    label: str
    classes: frozenset[int]
    icon: str


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("hair", "Hair", frozenset({HAIR}), "mdi6.face-woman-shimmer"),
        Attribute("eyeglasses", "Eyeglasses", frozenset({EYEGLASSES}), "mdi6.glasses"),
        Attribute("nose", "Nose", frozenset({NOSE}), "mdi6.face-man-outline"),
        Attribute("eyes", "Eyes", frozenset({L_EYE, R_EYE}), "mdi6.eye-outline"),
        Attribute("eyebrows", "Eyebrows", frozenset({L_BROW, R_BROW}), "mdi6.eye-plus-outline"),
        Attribute("lips", "Lips and mouth", frozenset({MOUTH, U_LIP, L_LIP}), "mdi6.lipstick"),
        Attribute("ears", "Ears", frozenset({L_EAR, R_EAR}), "mdi6.ear-hearing"),
        Attribute("hat", "Hat", frozenset({HAT}), "mdi6.hat-fedora"),
        Attribute("earrings", "Earrings", frozenset({EARRING}), "mdi6.diamond-stone"),
        Attribute("necklace", "Necklace", frozenset({NECKLACE}), "mdi6.necklace"),
        Attribute("neck", "Neck", frozenset({NECK}), "mdi6.account-outline"),
        Attribute("cloth", "Clothes", frozenset({CLOTH}), "mdi6.tshirt-crew-outline"),
    )
}


def attribute_classes(names: str | list[str] | tuple[str, ...]) -> frozenset[int]:
    """Union of the classes of one or several attribute names; raises ``KeyError`` with the
    list of known names for an unknown one."""
    if isinstance(names, str):
        names = [names]
    out: set[int] = set()
    for n in names:
        key = n.strip().lower()
        if key not in ATTRIBUTES:
            raise KeyError(f"unknown attribute {n!r}; known: {', '.join(ATTRIBUTES)}")
        out |= ATTRIBUTES[key].classes
    return frozenset(out)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Class-id map (H, W) -> RGB uint8 image (H, W, 3) in the project palette."""
    return PALETTE[np.clip(labels, 0, NUM_CLASSES - 1)]
