"""The daemon's configuration: one TOML file, validated whole before anything uses it.

Every error names the file, the key and the problem, e.g.
``/etc/rba/rba.toml: template[1].duration: invalid duration '5d': ...``. Unknown keys
are errors too, so a typo never silently falls back to a default. See docs/daemon.md
for an annotated example.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from behavior.compat import tomllib
from behavior.daemon.schedule import Schedule, parse_schedule
from behavior.durations import parse_duration
from behavior.formats import Format
from behavior.formats.asff import (
    PLACEHOLDER_ACCOUNT_ID,
    PLACEHOLDER_REGION,
    check_account_id,
    check_region,
)
from behavior.formats.suppressions import Suppression, parse_suppression
from behavior.interface import UsageError
from probes.reading import FileReadError, read_small_file

DEFAULT_CONFIG = "/etc/rba/rba.toml"
DEFAULT_STATE_DIR = "/var/lib/rba"
DEFAULT_SOCKET = "/run/rba/control.sock"
PROBE_CHOICES = ("auto", "ebpf", "poll")
FINDINGS_FORMATS: tuple[str, ...] = tuple(f.value for f in Format)
MAX_CONFIG_BYTES = 1024 * 1024  # a real configuration is a few kilobytes
MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 24 * 3600.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(UsageError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class Template:
    """An assessment template: which rules, for how long, and optionally when."""

    name: str
    duration_s: float
    rules: frozenset[str] | None = None  # None: every rule
    schedule: Schedule | None = None
    trace: bool = False  # also record the run's trace (runs/<id>/trace.rbt)
    redact_cmdline: bool = False  # hash command-line arguments in that trace


@dataclass(frozen=True)
class Retention:
    """Bounds on the finished runs kept in the store (active runs are never removed)."""

    max_runs: int = 500
    max_bytes: int = 1024 * 1024 * 1024


@dataclass(frozen=True)
class FindingsOutput:
    """Where findings go besides the store (an optional directory and its formats, an
    optional findings lake), and the AWS identity ASFF and the lake stamp on them."""

    directory: str | None = None
    formats: tuple[str, ...] = ("json",)
    lake: str | None = None  # each finished run is added there (behavior.fleet.lake)
    account: str = PLACEHOLDER_ACCOUNT_ID
    region: str = PLACEHOLDER_REGION


@dataclass(frozen=True)
class DaemonConfig:
    """The whole validated configuration."""

    path: str
    state_dir: str = DEFAULT_STATE_DIR
    socket: str = DEFAULT_SOCKET
    probes: str = "auto"
    poll_interval_s: float = 1.0
    content: bool = True
    max_active_runs: int = 8
    retention: Retention = field(default_factory=Retention)
    findings: FindingsOutput = field(default_factory=FindingsOutput)
    templates: tuple[Template, ...] = ()
    suppressions: tuple[Suppression, ...] = ()

    def template(self, name: str) -> Template | None:
        """The template called ``name``, or None."""
        return next((t for t in self.templates if t.name == name), None)


def load_config(path: str, *, known_rules: frozenset[str] | None = None) -> DaemonConfig:
    """Read and validate ``path``. ``known_rules``, when given, checks template rule ids.

    Raises ConfigError with a one-line message naming the file and the offending key."""
    try:
        raw = read_small_file(path, MAX_CONFIG_BYTES)
    except FileReadError as e:
        if e.missing:
            raise ConfigError(f"{path}: no such file (see docs/daemon.md for an example)") from None
        raise ConfigError(str(e)) from None
    data = parse_toml(raw, path)
    try:
        return parse_config(data, path=path, known_rules=known_rules)
    except UsageError as e:
        raise ConfigError(f"{path}: {e}") from None
    except RecursionError:  # a value nested past what validation walks
        raise ConfigError(f"{path}: nested too deeply") from None


def parse_toml(raw: bytes, name: str) -> dict[str, Any]:
    """TOML ``raw`` (UTF-8), or ConfigError naming ``name`` in one line: bad bytes, bad
    syntax and nesting too deep for the parser alike."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: not UTF-8 text (byte {e.start})") from None
    except ValueError as e:  # TOMLDecodeError, or an integer too long to convert
        raise ConfigError(f"{name}: not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{name}: not valid TOML: nested too deeply") from None


def parse_config(
    data: Mapping[str, Any], *, path: str = "<config>", known_rules: frozenset[str] | None = None
) -> DaemonConfig:
    """Validate already-parsed TOML. Errors name the key but not the file."""
    _only_keys("", data, {"daemon", "retention", "findings", "template", "suppression"})
    daemon = _table(data, "daemon")
    _only_keys(
        "daemon",
        daemon,
        {"state_dir", "socket", "probes", "poll_interval", "content", "max_active_runs"},
    )
    probes = _get(daemon, "daemon", "probes", str, "auto")
    if probes not in PROBE_CHOICES:
        raise UsageError(f"daemon.probes: {probes!r} is not one of {', '.join(PROBE_CHOICES)}")
    templates = tuple(
        _parse_template(f"template[{i}]", t, known_rules)
        for i, t in enumerate(_array_of_tables(data, "template"))
    )
    names = [t.name for t in templates]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"template: the name {duplicates[0]!r} is used more than once")
    return DaemonConfig(
        path=path,
        state_dir=_path(daemon, "daemon", "state_dir", DEFAULT_STATE_DIR),
        socket=_path(daemon, "daemon", "socket", DEFAULT_SOCKET),
        probes=probes,
        poll_interval_s=_duration(
            daemon, "daemon", "poll_interval", "1s", minimum=0.1, maximum=60.0
        ),
        content=_get(daemon, "daemon", "content", bool, True),
        max_active_runs=_positive_int(daemon, "daemon", "max_active_runs", 8),
        retention=_parse_retention(_table(data, "retention")),
        findings=_parse_findings(_table(data, "findings")),
        templates=templates,
        suppressions=tuple(
            parse_suppression(f"suppression[{i}]", s, known_rules)
            for i, s in enumerate(_array_of_tables(data, "suppression"))
        ),
    )


def _parse_template(
    where: str, table: Mapping[str, Any], known_rules: frozenset[str] | None
) -> Template:
    _only_keys(where, table, {"name", "duration", "rules", "schedule", "trace", "redact_cmdline"})
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(
            f"{where}.name: required, 1-64 letters, digits, '.', '_' or '-' (got {name!r})"
        )
    if "duration" not in table:
        raise UsageError(f"{where}.duration: required, e.g. '15m' or '24h'")
    rules = None
    if "rules" in table:
        value = table["rules"]
        if not isinstance(value, list) or not value or not all(isinstance(r, str) for r in value):
            raise UsageError(f"{where}.rules: must be a non-empty list of rule ids")
        unknown = sorted(set(value) - known_rules) if known_rules is not None else []
        if unknown:
            raise UsageError(f"{where}.rules: unknown rule id {unknown[0]!r} (see `rba rules`)")
        rules = frozenset(value)
    schedule = None
    if "schedule" in table:
        text = _get(table, where, "schedule", str, "")
        try:
            schedule = parse_schedule(text)
        except UsageError as e:
            raise UsageError(f"{where}.schedule: {e}") from e
    trace = _get(table, where, "trace", bool, False)
    redact = _get(table, where, "redact_cmdline", bool, False)
    if redact and not trace:
        raise UsageError(f"{where}.redact_cmdline: needs trace = true (it applies to the trace)")
    return Template(
        name=name,
        duration_s=_duration(
            table, where, "duration", "15m", minimum=MIN_WINDOW_S, maximum=MAX_WINDOW_S
        ),
        rules=rules,
        schedule=schedule,
        trace=trace,
        redact_cmdline=redact,
    )


def _parse_retention(table: Mapping[str, Any]) -> Retention:
    _only_keys("retention", table, {"max_runs", "max_megabytes"})
    default = Retention()
    return Retention(
        max_runs=_positive_int(table, "retention", "max_runs", default.max_runs),
        max_bytes=_positive_int(
            table, "retention", "max_megabytes", default.max_bytes // 1024 // 1024
        )
        * 1024
        * 1024,
    )


def _parse_findings(table: Mapping[str, Any]) -> FindingsOutput:
    _only_keys("findings", table, {"directory", "formats", "lake", "account", "region"})
    directory = _path(table, "findings", "directory", "") or None
    lake = _path(table, "findings", "lake", "") or None
    formats = table.get("formats", ["json"])
    if not isinstance(formats, list) or not formats:
        raise UsageError('findings.formats: must be a non-empty list, e.g. ["json"]')
    for fmt in formats:
        if fmt not in FINDINGS_FORMATS:
            raise UsageError(
                f"findings.formats: {fmt!r} is not one of {', '.join(FINDINGS_FORMATS)}"
            )
    return FindingsOutput(
        directory=directory,
        formats=tuple(dict.fromkeys(formats)),
        lake=lake,
        account=_checked(table, "account", PLACEHOLDER_ACCOUNT_ID, check_account_id),
        region=_checked(table, "region", PLACEHOLDER_REGION, check_region),
    )


def _checked(table: Mapping[str, Any], key: str, default: str, check: Callable[[str], str]) -> str:
    value: str = _get(table, "findings", key, str, default)
    try:
        return check(value)
    except ValueError as e:
        raise UsageError(f"findings.{key}: {e}") from None


def _only_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise UsageError(f"{name}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{key}: must be a table ([{key}])")
    return value


def _array_of_tables(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UsageError(f"{key}: must be an array of tables ([[{key}]])")
    return value


def _get(table: Mapping[str, Any], where: str, key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise UsageError(f"{where}.{key}: must be a {kind.__name__}, not {value!r}")
    return value


def _path(table: Mapping[str, Any], where: str, key: str, default: str) -> str:
    value: str = _get(table, where, key, str, default)
    if value and not value.startswith("/"):
        raise UsageError(f"{where}.{key}: must be an absolute path, not {value!r}")
    return value


def _positive_int(table: Mapping[str, Any], where: str, key: str, default: int) -> int:
    value: int = _get(table, where, key, int, default)
    if value < 1:
        raise UsageError(f"{where}.{key}: must be at least 1, not {value}")
    return value


def _duration(
    table: Mapping[str, Any],
    where: str,
    key: str,
    default: str,
    *,
    minimum: float,
    maximum: float,
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{where}.{key}: must be a duration such as '90s', not {value!r}")
    try:
        return parse_duration(str(value), minimum=minimum, maximum=maximum)
    except UsageError as e:
        raise UsageError(f"{where}.{key}: {e}") from e
