"""The app's document model (no Qt): the edit setup and its result, undo-able mask strokes, session
files (one JSON codec with edit.json), autosave, and which long jobs run."""

from .brush import MaskEdit, empty_mask, paint_stroke, quantized
from .jobs import JobBoard
from .codec import SavedResult, SetupError, load_mask_png, save_mask_png
from .setup import Autosave, EditSetup, ReferenceSetup

__all__ = ["Autosave", "EditSetup", "JobBoard", "MaskEdit", "ReferenceSetup", "SavedResult", "SetupError",
           "empty_mask", "load_mask_png", "paint_stroke", "quantized", "save_mask_png"]
