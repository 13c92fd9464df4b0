"""Entry point of the desktop bundle (packaging/triface-studio.spec).

    triface-studio                 start the app
    triface-studio --version       print the version and exit
    triface-studio --cli ARGS...   run the ``triface`` command line (e.g. ``--cli models list``)
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--version"]:
        from triface_studio import __version__

        print(f"triface-studio {__version__}")
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
