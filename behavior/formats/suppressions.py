"""Suppressions: "port 8080 is expected here", said once, with a reason, maybe until a date.

A suppression file (``--suppressions FILE``) and the daemon's configuration hold
``[[suppression]]`` tables::

    [[suppression]]
    rule = "unused-listening-port"
    port = 8080
    reason = "the health-check endpoint; probed only by the load balancer"
    expires = 2027-01-31          # optional; a TOML date or "2027-01-31"

Match keys (all given ones must match the finding's subject): ``port`` (listening or
remote port), ``exe`` (the process's executable, exact), ``path`` (a glob over the file,
module or executable path), ``remote`` (an address or a CIDR), ``package`` (a glob over
the owning package: ``"libpython3*"``; ``"*"`` is any file owned by an OS package, and
``"unpackaged"`` matches only files no package owns). :func:`apply_suppressions` moves
matched findings into ``Report.suppressed`` with their reason; nothing is dropped. An
expired entry stops applying and is listed in ``Report.expired_suppressions`` with the
number of findings it would have matched.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from behavior.compat import tomllib
from behavior.interface import (
    ExpiredSuppression,
    Finding,
    Report,
    SuppressedFinding,
    SuppressionInfo,
    UsageError,
)
from behavior.subjects import (
    UNPACKAGED,
    ConnectionSubject,
    FileSubject,
    ListenerSubject,
    LoginSubject,
    ModuleSubject,
    processes_of,
)
from probes.reading import FileReadError, read_small_file

MAX_SUPPRESSIONS_BYTES = 1024 * 1024
MATCH_KEYS = ("port", "exe", "path", "remote", "package")
_HEADER = re.compile(r"^\s*\[\[\s*suppression\s*\]\]\s*(#.*)?$")


@dataclass(frozen=True)
class Suppression:
    """One entry: which rule, which subjects, why, and until when."""

    rule: str
    reason: str
    match: tuple[tuple[str, str | int], ...]  # (key, value) pairs from MATCH_KEYS
    expires: dt.date | None = None
    source: str = ""  # "FILE:LINE" when known, else "suppression[i]"

    def info(self) -> SuppressionInfo:
        """The entry as the report states it."""
        return SuppressionInfo(
            rule_id=self.rule,
            match=dict(self.match),
            reason=self.reason,
            expires=self.expires.isoformat() if self.expires else "",
            source=self.source,
        )

    def expired(self, today: dt.date) -> bool:
        """True from the day after ``expires`` on (the expiry day itself still applies)."""
        return self.expires is not None and today > self.expires

    def matches(self, finding: Finding) -> bool:
        """True when the finding is of this rule and every match key fits its evidence."""
        if finding.rule_id != self.rule:
            return False
        return all(_key_matches(key, value, finding) for key, value in self.match)


def parse_suppression(
    where: str, table: Mapping[str, Any], known_rules: frozenset[str] | None = None
) -> Suppression:
    """Validate one ``[[suppression]]`` table; ``where`` names it in errors."""
    allowed = {"rule", "reason", "expires", *MATCH_KEYS}
    for key in table:
        if key not in allowed:
            raise UsageError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    rule, reason = table.get("rule"), table.get("reason")
    if not isinstance(rule, str) or not rule.strip():
        raise UsageError(f"{where}.rule: required, a rule id such as 'unused-listening-port'")
    if known_rules is not None and rule.strip() not in known_rules:
        raise UsageError(f"{where}.rule: unknown rule id {rule!r} (see rba rules)")
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(f"{where}.reason: required, say why the finding is accepted")
    match = tuple(_match_value(where, key, table[key]) for key in MATCH_KEYS if key in table)
    return Suppression(
        rule.strip(), reason.strip(), match, _parse_expiry(where, table), source=where
    )


def _match_value(where: str, key: str, value: Any) -> tuple[str, str | int]:
    if key == "port":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise UsageError(f"{where}.port: must be an integer 1..65535, not {value!r}")
        return key, value
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}.{key}: must be a non-empty string, not {value!r}")
    if key == "remote":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            example = "an address or CIDR such as 198.51.100.0/24"
            raise UsageError(f"{where}.remote: must be {example}, not {value!r}") from None
    return key, value


def _parse_expiry(where: str, table: Mapping[str, Any]) -> dt.date | None:
    value = table.get("expires")
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise UsageError(f"{where}.expires: must be a date such as 2027-01-31, not {value!r}")


def header_lines(text: str) -> list[int]:
    """1-based line numbers of the ``[[suppression]]`` headers in TOML ``text``."""
    return [n for n, line in enumerate(text.splitlines(), 1) if _HEADER.match(line)]


def parse_suppressions(
    text: str, *, name: str, known_rules: frozenset[str] | None = None
) -> tuple[Suppression, ...]:
    """The entries of a suppression file's ``text``; errors name ``name`` and the line."""
    try:
        data = tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer too long to convert
        raise UsageError(f"{name}: not valid TOML: {e}") from None
    except RecursionError:
        raise UsageError(f"{name}: not valid TOML: nested too deeply") from None
    unknown = sorted(set(data) - {"suppression"})
    if unknown:
        raise UsageError(f"{name}: unknown table or key {unknown[0]!r} (only [[suppression]])")
    tables = data.get("suppression", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{name}: 'suppression' must be an array of tables ([[suppression]])")
    lines = header_lines(text)
    entries = []
    for i, table in enumerate(tables):
        where = f"{name}:{lines[i]}" if len(lines) == len(tables) else f"{name}"
        try:
            entries.append(
                replace(parse_suppression(f"suppression[{i}]", table, known_rules), source=where)
            )
        except UsageError as e:
            raise UsageError(f"{where}: {e}") from None
    return tuple(entries)


def load_suppressions(
    path: str, known_rules: frozenset[str] | None = None
) -> tuple[Suppression, ...]:
    """Read and validate a suppression file (UsageError naming the file and line)."""
    try:
        raw = read_small_file(path, MAX_SUPPRESSIONS_BYTES)
    except FileReadError as e:
        raise UsageError(f"cannot read the suppressions: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    return parse_suppressions(text, name=path, known_rules=known_rules)


def apply_suppressions(
    report: Report, suppressions: Sequence[Suppression], today: dt.date | None = None
) -> Report:
    """The report with matched findings moved to ``suppressed`` (first matching entry
    wins) and expired entries listed with how many findings they would have matched."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    active = [s for s in suppressions if not s.expired(today)]
    expired = [s for s in suppressions if s.expired(today)]
    kept: list[Finding] = []
    suppressed = list(report.suppressed)
    for finding in report.findings:
        entry = next((s for s in active if s.matches(finding)), None)
        if entry is None:
            kept.append(finding)
        else:
            suppressed.append(SuppressedFinding(finding, entry.info()))
    stale = []
    for entry in expired:
        matched = tuple(f for f in report.findings if entry.matches(f))
        stale.append(ExpiredSuppression(entry.info(), len(matched), matched))
    return replace(
        report,
        findings=tuple(kept),
        suppressed=tuple(suppressed),
        expired_suppressions=(*report.expired_suppressions, *stale),
    )


def _key_matches(key: str, wanted: str | int, finding: Finding) -> bool:
    candidates = [c for c in _subject_values(key, finding) if c]
    if key == "path":
        return any(fnmatch.fnmatchcase(str(c), str(wanted)) for c in candidates)
    if key == "package":
        return any(_package_matches(str(c), str(wanted)) for c in candidates)
    if key == "remote":
        network = ipaddress.ip_network(str(wanted), strict=False)
        return any(_in_network(str(c), network) for c in candidates)
    return wanted in candidates


def _package_matches(package: str, pattern: str) -> bool:
    """A glob over the owning package; an unpackaged file matches only "unpackaged", so
    ``"*"`` means "any file an OS package owns"."""
    if package == UNPACKAGED:
        return pattern == UNPACKAGED
    return fnmatch.fnmatchcase(package, pattern)


def _in_network(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]) in network
    except ValueError:
        return False


def _subject_values(key: str, finding: Finding) -> Iterator[str | int]:
    """The subject's fields a match key is compared with (docs/identity.md)."""
    subject = finding.subject
    if subject is None:
        return
    if key == "port":
        if isinstance(subject, ListenerSubject):
            yield subject.port
        elif isinstance(subject, ConnectionSubject):
            yield subject.remote.port
    elif key in ("exe", "path"):
        yield from (p.exe for p in processes_of(subject))
        if isinstance(subject, LoginSubject):
            yield subject.program
        if key == "path" and isinstance(subject, FileSubject):
            yield subject.path
        elif key == "path" and isinstance(subject, ModuleSubject):
            yield subject.module
    elif key == "remote":
        if isinstance(subject, ConnectionSubject):
            yield subject.remote.address
        elif isinstance(subject, LoginSubject) and subject.session is not None:
            yield subject.session.remote_host
    elif key == "package" and isinstance(subject, FileSubject):
        yield subject.package or UNPACKAGED
