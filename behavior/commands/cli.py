"""The ``rba`` command line. Only this layer prints and chooses exit codes.

Each subcommand lives in ``behavior/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Command modules keep their heavy
imports inside ``run`` so that ``rba scan`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence

from behavior import __version__
from behavior.formats.terminal import visible
from behavior.interface import UsageError

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
    "diff": ("behavior.commands.diff", "what appeared, disappeared and stayed between two reports"),
    "lake": ("behavior.commands.lake", "add JSON reports to a findings lake (Parquet, OCSF)"),
    "fleet": ("behavior.commands.fleet", "what a findings lake says about the fleet (DuckDB)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that subcommand (the first word of the
    command line), so ``rba scan`` neither imports nor builds the other commands."""
    parser = argparse.ArgumentParser(
        prog="rba", description="rba: runtime behaviour analyzer for Linux hosts"
    )
    parser.add_argument("--version", action="version", version=f"rba {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="no progress line and no notices: errors only",
        )
        module = importlib.import_module(module_name)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named by ``argv`` when it is the first word, else None."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rba`` console script."""
    from behavior.commands.stdio import StdoutError, guarded_stdio, silence_stdout

    words = list(sys.argv[1:] if argv is None else argv)
    try:
        with guarded_stdio():
            args = build_parser(_chosen_command(words)).parse_args(words)
            return _run(args, as_program=argv is None)
    except StdoutError as e:
        print(f"rba {_chosen_command(words) or ''}: {e}".replace(" :", ":"), file=sys.stderr)
        silence_stdout()
        return EXIT_ERROR
    except BrokenPipeError:
        silence_stdout()  # the reader went away (rba ... | head): nothing more to say
        return EXIT_OK


# Commands that run a window: signals end it early, and cannot interrupt its finishing.
WINDOW_COMMANDS = ("assess", "capture")


def _run(args: argparse.Namespace, *, as_program: bool) -> int:
    signals: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.command in WINDOW_COMMANDS:
        from behavior.commands.window import window_command_signals

        signals = window_command_signals(until_exit=as_program)
    try:
        with signals:
            code: int = args._run(args)
    except UsageError as e:
        print(f"rba {args.command}: {visible(str(e))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"rba {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
