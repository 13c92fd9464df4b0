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
    rc = main(["parse", str(good), str(broken), str(blank), "--out", str(out), "--color", "--json", "--aligned"])
    err = capsys.readouterr().err
    assert rc == 2                                   # some images failed, the good one was written
    assert "broken.jpg" in err and "blank.png" in err and "no face" in err
    labels = np.asarray(Image.open(out / "astronaut_aligned.png"))            # on the aligned crop
    assert labels.shape == (512, 512) and labels.max() < 19
    assert (labels == 1).mean() > 0.08 and (labels == 13).mean() > 0.08     # skin and hair present
    on_photo = np.asarray(Image.open(out / "astronaut.png"))                  # on the photo (also 512 px)
    assert on_photo.shape == (512, 512) and (on_photo == 1).any() and (on_photo == 13).any()
    assert np.asarray(Image.open(out / "astronaut_color.png")).shape == (512, 512, 3)
    assert np.asarray(Image.open(out / "astronaut_crop.png")).shape == (512, 512, 3)
    doc = json.loads((out / "astronaut.json").read_text())
    assert len(doc["landmarks"]) == 468 and len(doc["camera_label"]) == 25
    assert set(doc["pose"]) == {"yaw", "pitch", "roll"}
    assert not (out / "broken.png").exists() and not (out / "blank.png").exists()


def test_parse_writes_labels_on_the_photo_and_the_aligned_map_on_request(tmp_path, capsys):
    """The same face pasted into a larger, non-square photo: NAME.png has the photo's size and its
    labels sit where the face is; --aligned adds the 512 px map over NAME_crop.png."""
    from triface_studio.core.images import load_image

    face = load_image(resource_path("samples", "astronaut.png"))
    photo = np.full((560, 630, 3), 120, np.uint8)      # under 640 px: no tiled search (the sample has
    photo[20:532, 100:612] = face                       # face-like patches a tile would find)
    Image.fromarray(face).save(tmp_path / "alone.png")
    Image.fromarray(photo).save(tmp_path / "wide.png")
    out = tmp_path / "out"
    assert main(["parse", str(tmp_path / "alone.png"), str(tmp_path / "wide.png"), "--out", str(out),
                 "--aligned", "--color", "--parser", "shipped"]) == 0
    assert "parser shipped" in capsys.readouterr().err
    alone = np.asarray(Image.open(out / "alone.png"))
    wide = np.asarray(Image.open(out / "wide.png"))
    assert alone.shape == (512, 512) and wide.shape == (560, 630)
    assert np.asarray(Image.open(out / "wide_color.png")).shape == (560, 630, 3)
    assert np.asarray(Image.open(out / "wide_aligned.png")).shape == (512, 512)
    assert np.asarray(Image.open(out / "wide_aligned_color.png")).shape == (512, 512, 3)
    inside = wide[20:532, 100:612]
    for c in (1, 13):                                  # skin and hair land on the face in the photo
        iou = ((inside == c) & (alone == c)).sum() / ((inside == c) | (alone == c)).sum()
        assert iou > 0.9, (c, iou)
    assert (wide[:, :90] == 0).mean() > 0.95           # the plain grey margin is background
    help_text = _help(capsys)
    assert "YOUR PHOTO" in help_text and "--aligned" in help_text and "aligned crop" in help_text


def _help(capsys) -> str:
    import pytest

    with pytest.raises(SystemExit):
        main(["parse", "--help"])
    return capsys.readouterr().out


def test_parse_refuses_a_parser_that_is_not_installed(tmp_path, capsys):
    good = resource_path("samples", "astronaut.png")
    assert main(["parse", str(good), "--out", str(tmp_path / "o"), "--parser", "fused"]) == 2
    err = capsys.readouterr().err
    assert "triface models install bisenet" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "astronaut.png").exists()
