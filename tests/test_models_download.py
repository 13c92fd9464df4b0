"""Downloads against a real HTTP server on 127.0.0.1: resume after dropped connections, hash checks,
no half files under the final name, and the `triface models download` command."""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from triface_studio.cli import main as cli
from triface_studio.models import registry
from triface_studio.models.download import DownloadError, HashMismatch, download_file

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append(rng)
        data = srv.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404, "no such file")
            return
        start = 0
        if rng and srv.ranges:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drops > 0:                   # promise the whole body, send part of it, hang up
            srv.drops -= 1
            self.wfile.write(body[: max(1, len(body) // 3)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"model.bin": PAYLOAD, "79999_iter.pth": PAYLOAD}
    srv.requests, srv.drops, srv.ranges = [], 0, True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http")
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_plain_download_checks_hash_and_reports_progress(server, tmp_path):
    seen = []
    digest = download_file(server.url + "model.bin", tmp_path / "m.bin", sha256=SHA,
                           progress=lambda n, t: seen.append((n, t)), chunk=32_768)
    assert digest == SHA and (tmp_path / "m.bin").read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]


def test_dropped_connections_resume_with_range(server, tmp_path):
    server.drops = 2
    digest = download_file(server.url + "model.bin", tmp_path / "m.bin", sha256=SHA)
    assert digest == SHA and (tmp_path / "m.bin").read_bytes() == PAYLOAD
    assert server.requests[0] is None and len(server.requests) == 3
    first, second = (int(r.split("=")[1].rstrip("-")) for r in server.requests[1:])
    assert 0 < first < second < len(PAYLOAD)       # each retry asked only for the rest


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    server.drops, server.ranges = 1, False
    assert download_file(server.url + "model.bin", tmp_path / "m.bin", sha256=SHA) == SHA
    assert (tmp_path / "m.bin").read_bytes() == PAYLOAD


def test_interrupted_download_keeps_part_only_and_resumes_next_time(server, tmp_path):
    server.drops = 1
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError, match="resume"):
        download_file(server.url + "model.bin", dest, sha256=SHA, retries=0)
    part = tmp_path / "m.bin.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    have = part.stat().st_size
    assert download_file(server.url + "model.bin", dest, sha256=SHA) == SHA
    assert server.requests[-1] == f"bytes={have}-"
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_wrong_hash_leaves_nothing(server, tmp_path):
    with pytest.raises(HashMismatch, match="does not match"):
        download_file(server.url + "model.bin", tmp_path / "m.bin", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_cancel_and_http_errors_are_clear(server, tmp_path):
    ev = threading.Event()
    ev.set()
    with pytest.raises(DownloadError, match="cancelled"):
        download_file(server.url + "model.bin", tmp_path / "m.bin", cancel=ev)
    assert not (tmp_path / "m.bin").exists()
    with pytest.raises(DownloadError, match="404"):
        download_file(server.url + "nothing.bin", tmp_path / "n.bin")
    assert not (tmp_path / "n.bin").exists()


def test_cli_download_verify_remove(server, capsys):
    url = server.url + "79999_iter.pth"
    server.drops = 1
    assert cli.main(["models", "download", "bisenet-79999", "--url", url, "--sha256", SHA]) == 0
    out = capsys.readouterr()
    assert "downloaded bisenet-79999" in out.out and "79999_iter.pth" in out.err   # progress line
    folder = registry.find_model("bisenet-79999")
    assert folder is not None and (folder / "79999_iter.pth").read_bytes() == PAYLOAD
    assert registry.read_manifest(folder)["files"]["79999_iter.pth"]["sha256"] == SHA

    assert cli.main(["models", "verify", "bisenet-79999"]) == 0
    with open(folder / "79999_iter.pth", "r+b") as f:      # flip one byte: verify must notice
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    capsys.readouterr()
    assert cli.main(["models", "verify", "bisenet-79999"]) == 1
    assert "FAIL" in capsys.readouterr().out

    assert cli.main(["models", "remove", "bisenet-79999"]) == 0
    assert registry.find_model("bisenet-79999") is None and not folder.exists()


def test_cli_download_wrong_hash_is_an_error_without_files(server, capsys):
    # inception-fid pins a hash prefix in its published file name; random bytes cannot match it.
    server.files["pt.pth"] = PAYLOAD
    code = cli.main(["models", "download", "inception-fid", "--url", server.url + "pt.pth", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "sha256" in err and "Traceback" not in err
    folder = registry.model_dir("inception-fid")
    assert not folder.exists()     # not even an empty folder
    assert registry.find_model("inception-fid") is None


def test_download_without_address_explains_where_to_get_it(capsys):
    assert cli.main(["models", "download", "triplanenet-v2"]) == 2
    err = capsys.readouterr().err
    assert "no direct download address" in err and "github.com/anantarb/triplanenet" in err
