"""``rba daemon``: run the privileged assessment daemon in the foreground (for systemd)."""

from __future__ import annotations

import argparse
import dataclasses

from behavior.daemon.config import DEFAULT_CONFIG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rba daemon``."""
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})"
    )
    parser.add_argument("--socket", help="control socket path (overrides daemon.socket)")
    parser.add_argument("--state-dir", help="results store directory (overrides daemon.state_dir)")
    parser.add_argument(
        "--check", action="store_true", help="validate the configuration, print a summary, exit"
    )


def run(args: argparse.Namespace) -> int:
    """Load the configuration and serve until SIGTERM (exit 0) or a start-up error (2)."""
    from behavior.daemon import engine
    from behavior.daemon.config import load_config
    from behavior.daemon.logs import setup_logging
    from behavior.daemon.service import Daemon
    from behavior.interface import RbaError, UsageError

    config = load_config(args.config, known_rules=engine.known_rules())
    overrides = {"socket": args.socket, "state_dir": args.state_dir}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v})
    if args.check:
        names = ", ".join(t.name for t in config.templates) or "none"
        print(f"{args.config}: valid; templates: {names}")
        return 0
    setup_logging()
    try:
        return Daemon(config).serve()
    except UsageError:
        raise
    except RbaError as e:
        raise UsageError(str(e)) from e
