"""``triface``: the headless command line.  Each subcommand lives in its own module of this
package and exposes ``register(subparsers)``, which adds its parser and sets ``func``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order ``triface --help`` lists them.
COMMAND_MODULES = (
    "edit",
    "bench",
    "eval",
    "models",
    "train",
    "parse",
    "encode",
    "render",
)


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from triface_studio import __version__

    parser = argparse.ArgumentParser(
        prog="triface",
        description="TriFace Studio: reference-based, 3D-aware local facial attribute editing.",
    )
    parser.add_argument("--version", action="version", version=f"triface-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"triface_studio.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CommandError, ValueError, OSError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"triface {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"triface {args.command}: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
