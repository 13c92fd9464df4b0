"""The app's document model (no Qt): session state, undo-able mask strokes, session files."""

from .jobs import JobBoard
from .session import (Autosave, MaskEdit, Reference, Session, SessionError, empty_mask, load_mask_png,
                      paint_stroke, save_mask_png)

__all__ = ["Autosave", "JobBoard", "MaskEdit", "Reference", "Session", "SessionError", "empty_mask", "load_mask_png",
           "paint_stroke", "save_mask_png"]
