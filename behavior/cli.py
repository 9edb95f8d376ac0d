"""The ``rba`` command line. Only this layer prints and chooses exit codes.

Each subcommand lives in ``behavior/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Command modules keep their heavy
imports inside ``run`` so that ``rba scan`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from behavior.errors import UsageError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

# name -> (module, one-line help). Order is the order of `rba --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "assess": ("behavior.commands.assess", "watch this host for a window and report findings"),
    "capture": ("behavior.commands.capture", "record a window into a trace file"),
    "replay": ("behavior.commands.replay", "produce findings from a recorded trace"),
    "trace": ("behavior.commands.trace", "inspect a trace file"),
    "scan": ("behavior.commands.scan", "check ELF/PE files for DEP, stack cookies, ASLR, RELRO"),
    "rules": ("behavior.commands.rules", "list the rule catalogue"),
    "events": ("behavior.commands.events", "print events as they happen (debugging, demos)"),
    "daemon": ("behavior.commands.daemon", "run the privileged assessment daemon"),
    "run": ("behavior.commands.run", "ask the daemon to start a run of a template now"),
    "status": ("behavior.commands.status", "list the daemon's runs and its health"),
    "stop": ("behavior.commands.stop", "ask the daemon to end a run early (kept, marked partial)"),
    "findings": ("behavior.commands.findings", "fetch a daemon run's findings"),
}


def _available_commands() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rba", description="rba: runtime behaviour analyzer for Linux hosts"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in _available_commands().items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rba`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args._run(args)
    except UsageError as e:
        print(f"rba {args.command}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"rba {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
