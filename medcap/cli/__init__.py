"""Command-line interface: `medcap <command>` (installed) or `python -m medcap <command>`.

Each command lives in its own module exposing `add_parser(subparsers)` and `run(args) -> int`;
modules are imported lazily so `--help` stays fast and one broken command cannot hide the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

COMMANDS = {
    "caption": "medcap.cli.caption",
    "evaluate": "medcap.cli.evaluate",
    "reviews": "medcap.cli.reviews",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_program_name(), description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a command whose module is missing is reported, not fatal
            stub = sub.add_parser(name, help=f"(unavailable: {exc})")
            stub.set_defaults(_run=lambda args, exc=exc, name=name: _unavailable(name, exc))
            continue
        module.add_parser(sub)
    return parser


def _program_name() -> str:
    """`medcap` when run as the installed command, `python -m medcap` otherwise."""
    return "python -m medcap" if sys.argv[0].endswith("__main__.py") else "medcap"


def _unavailable(name: str, exc: Exception) -> int:
    print(f"error: the '{name}' command is unavailable: {exc}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)
