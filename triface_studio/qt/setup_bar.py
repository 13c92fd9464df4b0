"""The edit settings of the toolbar, bound to the document: refiner and its score model,
background, seed and model tier.

Each widget writes its value into the :class:`~triface_studio.document.EditSetup` and shows what
the setup holds (``bind`` / every "settings" change), so a value the user sets, a session opens
or a test sets reaches the request the same way.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QPushButton, QSpinBox, QToolBar

from triface_studio.document import EditSetup, SetupError
from triface_studio.pipeline.requests import BACKGROUNDS, LIMITS, REFINERS, TIERS

SEED_MIN = int(LIMITS["seed"][0])
SEED_MAX = min(int(LIMITS["seed"][1]), 2**31 - 1)           # QSpinBox holds an int32


class SetupBar:
    """Adds its widgets to ``toolbar``; ``on_error(message)`` tells the user about a refused value."""

    def __init__(self, toolbar: QToolBar, on_error=None):
        self.setup: EditSetup | None = None
        self.on_error = on_error or (lambda message: None)
        toolbar.addWidget(QLabel(" Refiner "))
        self.refiner = QComboBox()
        self.refiner.addItems(REFINERS)
        self.refiner.setToolTip("classical: no learned weights; sdedit: SDEdit with a score model (choose its folder)")
        toolbar.addWidget(self.refiner)
        self.score_button = QPushButton("Score model...")
        self.score_button.setToolTip("The SDEdit refiner's score model: a diffusers folder (UNet2DModel + scheduler), "
                                     "e.g. made by triface train score")
        self.score_button.clicked.connect(self.choose_score_model)
        toolbar.addWidget(self.score_button)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Background "))
        self.background = QComboBox()
        self.background.addItems(BACKGROUNDS)
        self.background.setToolTip("What shows behind the edited head: the identity's photo, the reference's, "
                                   "or nothing (transparent)")
        toolbar.addWidget(self.background)
        toolbar.addWidget(QLabel(" Seed "))
        self.seed = QSpinBox(minimum=SEED_MIN, maximum=SEED_MAX)
        toolbar.addWidget(self.seed)
        toolbar.addWidget(QLabel(" Tier "))
        self.tier = QComboBox()
        self.tier.addItems(TIERS)
        self.tier.setToolTip("The model tier: bundled (offline, CPU) or neural (your checkpoints, see Models)")
        toolbar.addWidget(self.tier)
        self.refiner.currentTextChanged.connect(lambda v: self._set(refine={"refiner": v}))
        self.background.currentTextChanged.connect(lambda v: self._set(background=v))
        self.seed.valueChanged.connect(lambda v: self._set(seed=int(v)))
        self.tier.currentTextChanged.connect(lambda v: self._set(tier=v))

    def bind(self, setup: EditSetup) -> None:
        self.setup = setup
        setup.subscribe(lambda what: what == "settings" and self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Show what the setup holds (signals blocked: this is no change of the setup)."""
        s = self.setup
        if s is None:
            return
        bg = s.background if isinstance(s.background, str) else None
        for w, v in ((self.refiner, s.refine.refiner), (self.background, bg), (self.tier, s.tier)):
            w.blockSignals(True)
            if v is None:
                w.setCurrentIndex(-1)
            else:
                w.setCurrentText(v)
            w.blockSignals(False)
        self.seed.blockSignals(True)
        self.seed.setValue(min(int(s.seed), SEED_MAX))
        self.seed.blockSignals(False)
        score = s.refine.score_model
        self.score_button.setText(f"Score: {Path(score).name}" if score else "Score model...")
        self.score_button.setToolTip(score or "The SDEdit refiner's score model: a diffusers folder")

    def choose_score_model(self) -> None:
        start = self.setup.refine.score_model or "" if self.setup else ""
        d = QFileDialog.getExistingDirectory(self.score_button, "Score model folder (diffusers)", start)
        if d:
            self.set_score_model(d)

    def set_score_model(self, folder: str) -> None:
        """Use ``folder`` as the score model, and the SDEdit refiner with it."""
        self._set(refine={"score_model": str(folder), "refiner": "sdedit"})

    def _set(self, **changes) -> None:
        if self.setup is None:
            return
        try:
            self.setup.update(**changes)
        except SetupError as e:
            self.on_error(str(e))
            self.refresh()
