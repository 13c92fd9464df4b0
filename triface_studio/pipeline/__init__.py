"""The edit pipeline (paper sections 3.1-3.3): analysis, tri-plane blending, 2D compositing,
refinement, re-encoding, and the exports of an edit.

    from triface_studio.pipeline import EditPipeline, EditRequest, ReferenceSpec, RefineSettings
    result = EditPipeline(tier="bundled").run(EditRequest(identity="me.jpg",
                 references=[ReferenceSpec("ref.jpg", ("hair",))]))

``EditPipeline`` is imported on first use: the requests (their choices, defaults and limits) are
read by the command line's parsers, which should not wait for torch.
"""

from .errors import Cancelled, EditError
from .requests import EditRequest, EditResult, ReferenceSpec, RefineSettings

__all__ = ["Cancelled", "EditError", "EditPipeline", "EditRequest", "EditResult", "ReferenceSpec", "RefineSettings"]


def __getattr__(name: str):
    if name == "EditPipeline":
        from .edit import EditPipeline

        globals()["EditPipeline"] = EditPipeline
        return EditPipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
