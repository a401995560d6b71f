"""The ``wattscape`` command line: thin subcommands over the Python API.

Each subcommand lives in its own module of this package, exposing ``add_parser(subparsers)`` (which
registers it and sets ``func``) and is imported lazily so ``wattscape --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommands, each the name of its module in this package
COMMANDS = ("ingest", "fit", "predict", "generate", "evaluate", "plan", "demo")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    from wattscape import __version__

    parser = argparse.ArgumentParser(prog="wattscape", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"wattscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"wattscape.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wattscape`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"wattscape {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
