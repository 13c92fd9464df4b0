"""TriFace Studio: reference-based, 3D-aware local facial attribute editing.

Package layout (lower layers never import higher ones; see ``pyproject.toml``):

``core``        pure torch/numpy math: cameras, tri-planes, rays, volume rendering, semantics,
                masks, blending and compositing.
``models``      networks and checkpoints: face analysis, the face parser, the bundled and the
                neural image-to-plane encoders and decoders, score models.
``pipeline``    the edit pipeline (request in, result out), refiners and exports.
``document``    the app's state (session, undo-able masks) without Qt.
``evaluation``  the paper's evaluation protocol and the benchmark suite.
``cli``         the ``triface`` command.
``qt``          every widget; the only package that imports Qt.
"""

__version__ = "0.1.0"
