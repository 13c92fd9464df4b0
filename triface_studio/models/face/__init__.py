"""Bundled face analysis: detection, 468 3D landmarks, head pose, canonical alignment, crop camera
and the 19-class parser.  See :class:`FaceAnalyzer`."""

from triface_studio.models.face.analyzer import (
    CANONICAL_LANDMARKS,
    CROP_SIZE,
    FaceAnalysis,
    FaceAnalyzer,
)
from triface_studio.models.face.errors import NoFaceError

__all__ = ["CANONICAL_LANDMARKS", "CROP_SIZE", "FaceAnalysis", "FaceAnalyzer", "NoFaceError"]
