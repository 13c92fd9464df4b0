"""The edit pipeline (paper sections 3.1-3.3): analysis, tri-plane blending, 2D compositing,
refinement, re-encoding, and the exports of an edit.

    from triface_studio.pipeline import EditPipeline, EditRequest, ReferenceSpec, RefineSettings
    result = EditPipeline(tier="bundled").run(EditRequest(identity="me.jpg",
                 references=[ReferenceSpec("ref.jpg", ("hair",))]))
"""

from .errors import Cancelled, EditError
from .requests import EditRequest, EditResult, ReferenceSpec, RefineSettings
from .edit import EditPipeline

__all__ = ["Cancelled", "EditError", "EditPipeline", "EditRequest", "EditResult", "ReferenceSpec", "RefineSettings"]
