"""Before the first window on X11: are the system libraries of Qt's xcb platform plugin there?

When one is missing, Qt aborts (exit 134) with a generic message about xcb-cursor, whatever the
missing library is.  This check runs ``ldd`` on PySide6's ``platforms/libqxcb.so``, maps every
"not found" library to its Debian/Ubuntu package and says exactly what to install.

When it runs: on Linux, when Qt would pick xcb, i.e. QT_QPA_PLATFORM is unset or names xcb, and
an X display is set (DISPLAY).  Offscreen/minimal/wayland runs, headless machines without DISPLAY
(Qt's own "could not connect to display" is clear there) and other systems are not checked, so
tests and ``--smoke`` keep working without X libraries.

    python -m triface_studio.qt.xcb_check            # report; exit 1 when something is missing
    python -m triface_studio.qt.xcb_check --install  # also apt-get install it (root with apt only)

``packaging/bootstrap.sh app`` runs it; TRIFACE_INSTALL_SYSTEM_DEPS=1 lets it install.
It imports nothing from Qt (it must work where Qt cannot start).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# shared library (soname) -> Debian / Ubuntu package.  The xcb plugin of Qt 6 links all of these.
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libglib-2.0.so.0": "libglib2.0-0",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


@dataclass
class XcbReport:
    checked: bool                       # False: not applicable here (see ``reason``)
    reason: str = ""
    plugin: str = ""
    missing: list[str] = field(default_factory=list)        # sonames
    packages: list[str] = field(default_factory=list)       # Debian packages for the known ones
    unknown: list[str] = field(default_factory=list)        # sonames without a known package

    @property
    def ok(self) -> bool:
        return not self.missing

    def apt_command(self) -> str:
        return f"sudo apt-get install -y {' '.join(self.packages)}" if self.packages else ""

    def message(self) -> str:
        if not self.checked:
            return f"xcb check skipped: {self.reason}"
        if self.ok:
            return "Qt's xcb platform plugin finds all its libraries"
        lines = [f"TriFace Studio cannot open a window: Qt's X11 (xcb) platform plugin misses "
                 f"{len(self.missing)} system librar{'y' if len(self.missing) == 1 else 'ies'}: "
                 f"{', '.join(self.missing)}."]
        if self.packages:
            lines.append(f"On Debian/Ubuntu install them with:\n    {self.apt_command()}")
        if self.unknown:
            lines.append(f"Not in the known list (find the package with `apt-file search NAME`): "
                         f"{', '.join(self.unknown)}")
        lines.append("Headless use needs none of them: QT_QPA_PLATFORM=offscreen.")
        return "\n".join(lines)


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames that ``ldd`` reports as "not found", once each, in order."""
    out: list[str] = []
    for line in ldd_output.splitlines():
        m = _NOT_FOUND.match(line)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def packages_for(sonames) -> tuple[list[str], list[str]]:
    """-> (Debian packages, sonames without a known package); packages once each, in order."""
    pkgs: list[str] = []
    unknown: list[str] = []
    for so in sonames:
        p = DEBIAN_PACKAGES.get(so)
        if p is None:
            unknown.append(so)
        elif p not in pkgs:
            pkgs.append(p)
    return pkgs, unknown


def report_from_ldd(ldd_output: str, plugin: str = "") -> XcbReport:
    missing = missing_libraries(ldd_output)
    pkgs, unknown = packages_for(missing)
    return XcbReport(True, plugin=plugin, missing=missing, packages=pkgs, unknown=unknown)


def xcb_plugin_path() -> Path | None:
    """PySide6's ``Qt/plugins/platforms/libqxcb.so`` (found without importing Qt), or None."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if p.is_file():
            return p
    return None


def applies(environ=None, platform: str | None = None) -> tuple[bool, str]:
    """Whether Qt would start on xcb here (the check's scope); -> (applies, why not)."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return False, f"not Linux ({platform})"
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.split(":")[0].split(";")[0].startswith("xcb"):
        return False, f"QT_QPA_PLATFORM={qpa}"
    if not env.get("DISPLAY"):
        return False, "no X display (DISPLAY is not set)"
    return True, ""


def check(environ=None, platform: str | None = None, plugin: Path | None = None, run=subprocess.run) -> XcbReport:
    """Run the check where it applies (see the module docstring)."""
    ok, why = applies(environ, platform)
    if not ok:
        return XcbReport(False, why)
    plugin = plugin or xcb_plugin_path()
    if plugin is None:
        return XcbReport(False, "PySide6's xcb plugin is not installed")
    if shutil.which("ldd") is None and run is subprocess.run:
        return XcbReport(False, "ldd is not available")
    try:
        proc = run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return XcbReport(False, f"ldd failed: {e}")
    return report_from_ldd(proc.stdout, str(plugin))


def install(report: XcbReport, run=subprocess.run) -> tuple[bool, str]:
    """apt-get install the report's packages; only as root with apt-get.  -> (done, message)."""
    if not report.packages:
        return False, "nothing known to install"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, f"not root: run\n    {report.apt_command()}"
    if shutil.which("apt-get") is None:
        return False, f"apt-get is not available; install the packages for: {', '.join(report.missing)}"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *report.packages]):
        proc = run(cmd, env=env)
        if proc.returncode != 0:
            return False, f"`{' '.join(cmd)}` failed (exit {proc.returncode})"
    return True, f"installed {' '.join(report.packages)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m triface_studio.qt.xcb_check",
                                 description="check the system libraries of Qt's xcb platform plugin")
    ap.add_argument("--install", action="store_true", help="apt-get install what is missing (root with apt only)")
    args = ap.parse_args(argv)
    rep = check()
    if rep.ok or not rep.checked:
        if rep.checked:
            print(rep.message())
        return 0
    if args.install:
        done, msg = install(rep)
        print(f"xcb check: {msg}", file=sys.stderr)
        if done:
            rep = check()
            if rep.ok:
                return 0
    print(rep.message(), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
