"""``triface parse``: several images in one run, outputs per image, clear errors for bad files."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from triface_studio.cli.main import main
from triface_studio.resources import resource_path


def test_parse_cli_outputs_and_errors(tmp_path, capsys):
    good = resource_path("samples", "astronaut.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(blank)
    out = tmp_path / "out"
    rc = main(["parse", str(good), str(broken), str(blank), "--out", str(out), "--color", "--json"])
    err = capsys.readouterr().err
    assert rc == 2                                   # some images failed, the good one was written
    assert "broken.jpg" in err and "blank.png" in err and "no face" in err
    labels = np.asarray(Image.open(out / "astronaut.png"))
    assert labels.shape == (512, 512) and labels.max() < 19
    assert (labels == 1).mean() > 0.08 and (labels == 13).mean() > 0.08     # skin and hair present
    assert np.asarray(Image.open(out / "astronaut_color.png")).shape == (512, 512, 3)
    assert np.asarray(Image.open(out / "astronaut_crop.png")).shape == (512, 512, 3)
    doc = json.loads((out / "astronaut.json").read_text())
    assert len(doc["landmarks"]) == 468 and len(doc["camera_label"]) == 25
    assert set(doc["pose"]) == {"yaw", "pitch", "roll"}
    assert not (out / "broken.png").exists() and not (out / "blank.png").exists()
