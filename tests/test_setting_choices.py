"""The choices and defaults of an edit's settings have one owner, ``pipeline.requests``: the CLI's
parsers, the document's checks and the app's widgets offer exactly its values and start from
its defaults.  A front-end that spells them out again fails here once the owner changes."""

from __future__ import annotations

import json
import typing

import numpy as np
import pytest

from triface_studio.cli.edit import build_request
from triface_studio.cli.main import build_parser
from triface_studio.core.images import save_image
from triface_studio.document import EditSetup, ReferenceSetup, SetupError
from triface_studio.pipeline.requests import (BACKGROUNDS, DEFAULT_MESH_RESOLUTION, DEFAULT_PITCH_RANGE,
                                              DEFAULT_VIEW_RESOLUTION, DEFAULT_YAW_RANGE, LIMITS, MASK_MODES, ORBITS,
                                              REFINERS, TIERS, VIDEOS, EditRequest, ReferenceSpec, RefineSettings)

REQUEST_DEFAULTS = {k: getattr(EditRequest, k) for k in ("background", "seed", "tier", "device", "render_resolution")}


def _options(parser) -> dict:
    """{option string: action} of an argparse parser."""
    return {s: a for a in parser._actions for s in a.option_strings}


def _subparser(name: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[name]


def test_the_cli_offers_the_owners_choices():
    edit = _options(_subparser("edit"))
    assert tuple(edit["--refiner"].choices) == REFINERS
    assert tuple(edit["--tier"].choices) == TIERS
    assert tuple(edit["--mask-mode"].choices) == MASK_MODES
    ev = _options(_subparser("eval"))
    assert tuple(ev["--refiner"].choices) == REFINERS
    assert ev["--refiner"].default == RefineSettings().refiner
    assert set(TIERS) <= set(ev["--tier"].choices)
    assert (ev["--t0"].default, ev["--steps"].default) == (RefineSettings().t0, RefineSettings().steps)


def test_the_apps_command_line_offers_the_owners_tiers(capsys):
    from triface_studio.qt.app import parse_args

    for tier in TIERS:
        assert parse_args(["--tier", tier]).tier == tier
    with pytest.raises(SystemExit):
        parse_args(["--tier", "other"])
    assert "{" + ",".join(TIERS) + "}" in capsys.readouterr().err


def test_the_cli_help_states_the_owners_defaults():
    text = _subparser("edit").format_help()
    r = RefineSettings()
    for phrase in (f"(default {r.t0:g})", f"(default {r.steps})", f"(default {r.repeats})",
                   f"(default {r.dilate_radius})", f"(default {r.blur_sigma:g})",
                   f"(default: {ReferenceSpec.mask_mode})",
                   f"(default {DEFAULT_YAW_RANGE:g})", f"(default {DEFAULT_PITCH_RANGE:g})",
                   f"(default {DEFAULT_VIEW_RESOLUTION})", f"(default {EditRequest.seed})"):
        assert phrase in " ".join(text.split()), phrase


@pytest.fixture
def two_photos(tmp_path):
    paths = []
    for name in ("ident.png", "ref.png"):
        save_image(tmp_path / name, np.full((64, 64, 3), 128, np.uint8))
        paths.append(str(tmp_path / name))
    return paths


def test_the_cli_and_the_document_start_from_the_owners_defaults(two_photos, tmp_path):
    ident, ref = two_photos
    args = build_parser().parse_args(["edit", "--identity", ident, "--reference", ref, "--attribute", "hair"])
    req, exports, _ = build_request(args)
    assert req.refine == RefineSettings()
    assert {k: getattr(req, k) for k in REQUEST_DEFAULTS} == REQUEST_DEFAULTS
    assert req.references[0].mask_mode == ReferenceSpec.mask_mode
    assert (exports["yaw_range"], exports["pitch_range"], exports["view_resolution"], exports["mesh_resolution"]) \
        == (DEFAULT_YAW_RANGE, DEFAULT_PITCH_RANGE, DEFAULT_VIEW_RESOLUTION, DEFAULT_MESH_RESOLUTION)

    made = EditSetup()
    assert made.refine == RefineSettings()
    assert {k: getattr(made, k) for k in REQUEST_DEFAULTS} == REQUEST_DEFAULTS
    assert ReferenceSetup().mask_mode == ReferenceSpec.mask_mode
    # an edit.json that leaves everything out opens with the same defaults
    p = tmp_path / "edit.json"
    p.write_text(json.dumps({"format": "triface-edit", "request": {"identity": ident,
                                                                   "references": [{"image": ref,
                                                                                   "attributes": ["hair"]}]}}))
    opened = EditSetup.load(p)
    assert opened.refine == RefineSettings()
    assert {k: getattr(opened, k) for k in REQUEST_DEFAULTS} == REQUEST_DEFAULTS
    assert opened.references[0].mask_mode == ReferenceSpec.mask_mode


def test_the_document_accepts_exactly_the_owners_choices():
    s = EditSetup()
    for refiner in REFINERS:
        s.update(refine={"refiner": refiner})
        assert s.refine.refiner == refiner
    for tier in TIERS:
        s.update(tier=tier)
        assert s.tier == tier
    for bg in BACKGROUNDS:
        s.update(background=bg)
        assert s.background == bg
    for mode in MASK_MODES:
        assert ReferenceSetup(mask_mode=mode).mask_mode == mode
    for key, bad in (("refine", {"refiner": "other"}), ("tier", "other"), ("background", "other")):
        with pytest.raises(SetupError):
            s.update(**{key: bad})
    with pytest.raises(SetupError):
        ReferenceSetup(mask_mode="other")


def test_the_mask_modes_are_those_the_core_combines():
    from triface_studio.core.masks import MaskMode

    assert typing.get_args(MaskMode) == MASK_MODES


def _items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


@pytest.fixture
def toolbar(qtbot):
    from PySide6.QtWidgets import QMainWindow

    w = QMainWindow()
    qtbot.addWidget(w)
    yield w.addToolBar("settings")          # the window lives as long as the test


def test_the_setup_bar_panels_and_export_dialog_offer_the_owners_choices(qtbot, toolbar):
    from PySide6.QtGui import QUndoStack

    from triface_studio.qt.export_dialog import ExportDialog
    from triface_studio.qt.panels import ReferencePanel
    from triface_studio.qt.setup_bar import SetupBar

    bar = SetupBar(toolbar)
    assert tuple(_items(bar.refiner)) == REFINERS
    assert tuple(_items(bar.tier)) == TIERS
    assert tuple(_items(bar.background)) == BACKGROUNDS
    assert bar.seed.minimum() == LIMITS["seed"][0] and bar.seed.maximum() <= LIMITS["seed"][1]
    bar.bind(EditSetup())
    assert (bar.refiner.currentText(), bar.tier.currentText(), bar.background.currentText(), bar.seed.value()) \
        == (RefineSettings().refiner, EditRequest.tier, EditRequest.background, EditRequest.seed)

    stack = QUndoStack()
    panel = ReferencePanel(1, stack)
    qtbot.addWidget(panel)
    modes = _items(panel.mode)
    assert sorted(modes) == sorted(MASK_MODES) and modes[0] == ReferenceSpec.mask_mode
    assert panel.mode.currentText() == ReferenceSpec.mask_mode

    dialog = ExportDialog()
    qtbot.addWidget(dialog)
    assert tuple(_items(dialog.path)) == ORBITS
    assert tuple(_items(dialog.video)) == ("none", *VIDEOS)
    assert (dialog.frames.minimum(), dialog.frames.maximum()) == LIMITS["views"]
    assert (dialog.yaw_range.value(), dialog.pitch_range.value()) == (DEFAULT_YAW_RANGE, DEFAULT_PITCH_RANGE)
