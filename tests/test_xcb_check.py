"""The set-up check for Qt's xcb platform plugin: ldd's "not found" lines become an apt-get line."""

from __future__ import annotations

import subprocess

import pytest

from triface_studio.qt import xcb_check

# ldd of PySide6 6.x's libqxcb.so on a fresh Debian with X but without two of Qt's xcb libraries
FAKE_LDD = """\
\tlinux-vdso.so.1 (0x00007ffd8a3f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f301b784000)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f301b721000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f301ab71000)
\tlibxcb-keysyms.so.1 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f301a38c000)
\tlibxcb-icccm.so.4 => not found
\tlibweird-thing.so.3 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f301b7d1000)
"""


def test_missing_libraries_map_to_debian_packages():
    rep = xcb_check.report_from_ldd(FAKE_LDD, "/venv/libqxcb.so")
    assert rep.missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0",
                           "libweird-thing.so.3"]                       # once each, in order
    assert rep.packages == ["libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"]
    assert rep.unknown == ["libweird-thing.so.3"] and not rep.ok
    msg = rep.message()
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0" in msg
    assert "libweird-thing.so.3" in msg and "apt-file search" in msg and "offscreen" in msg
    assert "xcb-cursor0" not in msg          # not Qt's misleading guess: it is installed here
    assert xcb_check.report_from_ldd(FAKE_LDD.replace("not found", "=> /lib/x.so")).ok


def test_every_known_library_has_a_package_name():
    pkgs, unknown = xcb_check.packages_for(["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1",
                                            "libxkbcommon-x11.so.0", "libxcb-cursor.so.0"])
    assert pkgs == ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"] and not unknown


@pytest.mark.parametrize("env,platform,applies", [
    ({"DISPLAY": ":0"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}, "linux", False),
    ({}, "linux", False),                                   # headless: Qt's own message is clear
    ({"DISPLAY": ":0"}, "darwin", False),
])
def test_the_check_runs_only_where_qt_would_use_xcb(env, platform, applies):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, FAKE_LDD, "")
    rep = xcb_check.check(env, platform, plugin=xcb_check.Path("/venv/libqxcb.so"), run=fake_run)
    assert rep.checked is applies and bool(calls) is applies
    if applies:
        assert calls == [["ldd", "/venv/libqxcb.so"]] and rep.packages[:2] == ["libxcb-icccm4", "libxcb-keysyms1"]
    else:
        assert rep.ok and "skipped" in rep.message()


def test_the_real_plugin_on_this_machine():
    """ldd on the installed PySide6 plugin: whatever it lacks here is reported with a package."""
    plugin = xcb_check.xcb_plugin_path()
    assert plugin is not None and plugin.name == "libqxcb.so"
    rep = xcb_check.check({"DISPLAY": ":99"}, "linux")
    assert rep.checked
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    assert set(rep.missing) == {line.split()[0] for line in out.splitlines() if "not found" in line}
    assert not rep.unknown, f"add these to DEBIAN_PACKAGES: {rep.unknown}"


def test_install_needs_root_and_apt(monkeypatch):
    rep = xcb_check.report_from_ldd(FAKE_LDD)
    monkeypatch.setattr(xcb_check.os, "geteuid", lambda: 1000)
    done, msg = xcb_check.install(rep, run=lambda *a, **k: pytest.fail("must not run apt as a user"))
    assert not done and "apt-get install -y libxcb-icccm4" in msg
    monkeypatch.setattr(xcb_check.os, "geteuid", lambda: 0)
    monkeypatch.setattr(xcb_check.shutil, "which", lambda name: "/usr/bin/" + name)
    cmds = []
    done, msg = xcb_check.install(rep, run=lambda cmd, env: cmds.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert done and cmds[-1][-3:] == ["libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"]


def test_the_app_stops_with_the_message_before_qt_aborts(monkeypatch, capsys):
    """The app's entry point on X without the libraries (ldd's answer faked): exit 3 with the apt-get
    line, before any QApplication exists (Qt would abort with 134 and a message about xcb-cursor)."""
    from triface_studio.qt import app

    real = xcb_check.check
    fake = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, FAKE_LDD, "")  # noqa: E731
    monkeypatch.setattr(xcb_check, "check",
                        lambda: real({"DISPLAY": ":0"}, "linux", xcb_check.Path("/venv/libqxcb.so"), run=fake))
    assert app.main([]) == 3
    err = capsys.readouterr().err
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0" in err
    from PySide6.QtWidgets import QApplication
    assert QApplication.instance() is None or QApplication.instance().platformName() == "offscreen"
