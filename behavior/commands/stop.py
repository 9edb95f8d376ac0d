"""``rba stop RUN``: end a run early; its findings are kept and marked partial."""

from __future__ import annotations

import argparse

from behavior.daemon.client import add_socket_argument, call
from behavior.daemon.protocol import StopRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rba stop``."""
    parser.add_argument("run", metavar="RUN", help="run id (see `rba status`)")
    add_socket_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Ask the daemon to end the run's window now."""
    call(args.socket, StopRequest(run=args.run))
    print(f"{args.run}: stopping; its partial findings will be kept")
    return 0
