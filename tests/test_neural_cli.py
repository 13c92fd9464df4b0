"""The neural training targets through argparse (as `triface train decoders|score`)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from triface_studio.cli import train_neural


def _parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    train_neural.register(sub)
    return p


def test_train_score_cli_runs_and_resumes(tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"{i}.png")
    out = tmp_path / "out"
    argv = ["train", "score", "--data", str(d), "--out", str(out), "--max-steps", "2", "--resolution", "16",
            "--channels", "8,16", "--layers-per-block", "1", "--batch-size", "2", "--quiet"]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2
    argv[argv.index("--max-steps") + 1] = "3"
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 3


def test_train_cli_errors(tmp_path):
    args = _parser().parse_args(["train", "score", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--max-steps", "1", "--channels", "a,b"])
    with pytest.raises(ValueError, match="--channels"):
        args.func(args)
    args = _parser().parse_args(["train", "decoders", "--data", str(tmp_path / "missing"), "--out",
                                 str(tmp_path / "o"), "--max-steps", "1"])
    with pytest.raises(ValueError, match="no such data folder"):
        args.func(args)
    assert set(train_neural.TARGETS) == {"decoders", "score"}
