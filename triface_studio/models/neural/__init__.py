"""The neural tier: EG3D / TriPlaneNet-compatible networks from the user's checkpoints.

``NeuralTier.from_checkpoints(folder, device)`` is the entry point (see :mod:`.tier`); the
networks are in :mod:`.eg3d` (generator, OSG decoder, super-resolution) and :mod:`.triplanenet`
(encoders); :mod:`.sdedit` is the masked SDEdit refiner; :mod:`.decoders` and :mod:`.training`
hold the paper's semantic/RGB decoders and their training.
"""

from __future__ import annotations


def __getattr__(name):
    if name in ("NeuralTier", "NeuralTierWarning"):
        from . import tier

        return getattr(tier, name)
    raise AttributeError(name)


__all__ = ["NeuralTier", "NeuralTierWarning"]
