"""``triface``: the headless command line.  Each subcommand lives in its own module of this
package and exposes ``register(subparsers)``, which adds its parser and sets ``func``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
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


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl+C, so that staging folders are removed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, _frame):
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` (main thread only; a no-op elsewhere)."""
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, _terminate)


@contextlib.contextmanager
def native_stderr_silenced(active: bool = True):
    """With ``active``, send what native libraries write to the stderr file descriptor (LiteRT's
    "INFO: Created TensorFlow Lite XNNPACK delegate" line) to /dev/null for the duration;
    Python's own ``sys.stderr`` is silenced with it, so errors are printed after the block."""
    if not active:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


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
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM))}
    install_signal_handlers()
    try:
        return int(args.func(args) or 0)
    except (CommandError, ValueError, OSError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, OSError) and e.strerror:
            msg = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
        print(f"triface {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if isinstance(e, Terminated):
            print(f"triface {args.command}: stopped by {e.args[0]}; nothing was written", file=sys.stderr)
            return 128 + e.signum
        print(f"triface {args.command}: cancelled", file=sys.stderr)
        return 130
    finally:
        for s, handler in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(s, handler)


if __name__ == "__main__":
    # run the package's own module, so that `python -m triface_studio.cli.main` and the commands'
    # `from .main import CommandError` share one CommandError class (else it escapes as a traceback)
    from triface_studio.cli.main import main as _main

    sys.exit(_main())
