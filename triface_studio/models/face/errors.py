"""The error of face analysis (no imports: every analyser and the pipeline raise and catch the same one)."""


class NoFaceError(ValueError):
    """No face was found in an image; the message names the file."""
