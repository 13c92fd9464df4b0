"""Entry point of the desktop app (console script ``triface-studio``)."""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    from triface_studio import __version__
    from triface_studio.pipeline.requests import TIERS
    ap = argparse.ArgumentParser(prog="triface-studio", description="TriFace Studio desktop app")
    ap.add_argument("--version", action="version", version=f"triface-studio {__version__}")
    ap.add_argument("--smoke", action="store_true", help="build the main window offscreen and exit (self-test)")
    ap.add_argument("--tier", choices=TIERS, default=None, help="model tier (default: last used)")
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    ap.add_argument("files", nargs="*", help="identity photo, then references, or a .triface session or an "
                                             "edit.json to open")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .xcb_check import check
    xcb = check()          # on X11 only: say which system libraries Qt lacks instead of Qt's abort
    if xcb.checked and not xcb.ok:
        print(xcb.message(), file=sys.stderr)
        return 3
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow, app_settings, default_pipeline_factory
    from .theme import apply_dark

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("TriFace Studio")
    app.setOrganizationName("triface-studio")
    apply_dark(app)
    try:
        from triface_studio.resources import icon_path
        from PySide6.QtGui import QIcon
        app.setWindowIcon(QIcon(str(icon_path())))
    except Exception:
        pass
    settings = app_settings()
    if args.tier:
        settings.setValue("tier", args.tier)
    win = MainWindow(default_pipeline_factory(str(settings.value("tier", "bundled")), args.device), settings,
                     tier_factory=default_pipeline_factory, device=args.device)
    if args.smoke:
        win.show()
        app.processEvents()
        ok = win.centralWidget() is not None and win.grab().width() > 0
        win.close()
        app.processEvents()
        print("triface-studio smoke test:", "ok" if ok else "FAILED")
        return 0 if ok else 1
    win.show()
    win.offer_recovery()
    for f in args.files:
        win.open_any(f)
    rc = app.exec()
    win.shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
