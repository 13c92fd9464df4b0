"""The bundled 19-class face parser (CelebAMask-HQ class order), trained by this project."""

from triface_studio.models.parser.network import ParserNet

__all__ = ["ParserNet"]
