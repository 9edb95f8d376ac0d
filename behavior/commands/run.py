"""``rba run TEMPLATE``: ask the daemon to start a run of a template now."""

from __future__ import annotations

import argparse
import time

from behavior.daemon.client import add_socket_argument, call
from behavior.daemon.protocol import (
    REQUEST_FORMATS,
    FindingsRequest,
    RunRequest,
    StatusRequest,
)

ACTIVE = ("collecting", "evaluating")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rba run``."""
    parser.add_argument("template", help="name of a template in the daemon's configuration")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run to finish, then print its findings",
    )
    parser.add_argument("--format", choices=REQUEST_FORMATS, type=str.lower, default="text")
    add_socket_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Print the new run's id (and with --wait, its findings once it finished)."""
    run_id = call(args.socket, RunRequest(template=args.template))
    if not args.wait:
        print(run_id)
        return 0
    while True:
        status = call(args.socket, StatusRequest())
        state = next((r["state"] for r in status["runs"] if r["id"] == run_id), None)
        if state not in ACTIVE:
            break
        time.sleep(0.5)
    text = call(args.socket, FindingsRequest(run=run_id, format=args.format))
    print(text if text.endswith("\n") else text + "\n", end="")
    return 0
