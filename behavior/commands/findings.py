"""``rba findings RUN``: fetch a finished run's findings from the daemon."""

from __future__ import annotations

import argparse

from behavior.daemon.client import add_socket_argument, call
from behavior.daemon.protocol import REQUEST_FORMATS, FindingsRequest
from behavior.formats.output import emit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rba findings``."""
    parser.add_argument("run", metavar="RUN", help="run id (see `rba status`)")
    parser.add_argument("--format", choices=REQUEST_FORMATS, type=str.lower, default="text")
    parser.add_argument("-o", "--output", help="write to FILE (atomically, mode 0600)")
    add_socket_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Print (or write) the run's report."""
    text = call(args.socket, FindingsRequest(run=args.run, format=args.format))
    emit(text, args.output)
    return 0
