"""Entry point of the desktop bundle (packaging/triface-studio.spec).

    triface-studio                 start the app
    triface-studio --version       print the version and exit
    triface-studio --cli ARGS...   run the ``triface`` command line (e.g. ``--cli models list``)
    triface-studio --self-test     check that the bundle is complete (Qt, torch, resources), print JSON
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--version"]:
        from triface_studio import __version__

        print(f"triface-studio {__version__}")
        return 0
    if argv[:1] == ["--self-test"]:
        return self_test()
    if argv[:1] == ["--cli"]:
        from triface_studio.cli.main import main as cli_main

        return cli_main(argv[1:])
    try:
        from triface_studio.qt.app import main as app_main
    except ImportError as e:
        print(f"triface-studio: the desktop app is not available in this build ({e}); "
              "use --cli for the command line", file=sys.stderr)
        return 2
    sys.argv = [sys.argv[0], *argv]
    return int(app_main() or 0)


def self_test() -> int:
    """Import the heavy parts, open the Models dialog offscreen and list the bundled models:
    what a frozen build most often lacks (Qt plugins, data files, hidden imports)."""
    import json
    import os
    import time

    t0 = time.perf_counter()
    times: dict[str, float] = {}

    def lap(name: str) -> None:
        times[name] = round(time.perf_counter() - t0, 3)

    import torch

    lap("torch")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from triface_studio import resources
    from triface_studio.models import registry
    from triface_studio.qt.models_dialog import ModelsDialog

    app = QApplication.instance() or QApplication([])
    lap("qt")
    icon = QIcon(str(resources.icon_path()))
    dlg = ModelsDialog()
    rows = dlg.table.rowCount()
    dlg.deleteLater()
    lap("models_dialog")
    bundled = {s.spec.name: s.state for s in registry.status_all() if s.spec.bundled}
    try:
        import triface_studio.qt.app  # noqa: F401
        gui = True
    except ImportError:
        gui = False
    lap("app_module")
    doc = {"ok": rows == len(registry.REGISTRY) and not icon.isNull() and gui
           and all(v == "installed" for v in bundled.values()),
           "torch": torch.__version__, "qt_platform": app.platformName(), "resources": str(resources.resources_dir()),
           "bundled_models": bundled, "gui_module": gui, "seconds": times}
    print(json.dumps(doc, indent=2))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
