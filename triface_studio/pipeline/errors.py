"""Errors of the edit pipeline.

:class:`EditError` carries a message meant for the user (it names the file or the setting at
fault); :class:`Cancelled` is raised from progress callbacks when the user cancels a job and
propagates through renders and refiners unchanged.
"""

from __future__ import annotations


class EditError(ValueError):
    """An edit cannot be done as asked; ``str(e)`` is a complete, user-facing sentence."""


class Cancelled(Exception):
    """The job was cancelled by the user (raised between stages, render chunks or diffusion steps)."""
