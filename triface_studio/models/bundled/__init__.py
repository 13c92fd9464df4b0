"""The bundled model tier: a CPU image-to-plane lift and analytic decoders (no weights to download)."""

from triface_studio.models.bundled.decoder import BundledDecoder
from triface_studio.models.bundled.encoder import CHANNELS, decoded_xy, head_height_field, lift
from triface_studio.models.bundled.tier import BundledTier

__all__ = ["BundledDecoder", "BundledTier", "CHANNELS", "decoded_xy", "head_height_field", "lift"]
