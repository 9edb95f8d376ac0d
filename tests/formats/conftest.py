"""Fixtures for the format tests: the sample report, the same report with three
suppressions applied (one matches, one does not, one expired), and an OCSF validator
built from the OCSF 1.5.0 JSON Schema that ships inside the ocsf-json-schema package."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from behavior.formats.suppressions import apply_suppressions, parse_suppressions
from behavior.interface import Report
from tests.formats.sample import sample_report

TODAY = dt.date(2026, 6, 1)
SUPPRESSIONS = """\
# port 8080 is expected here
[[suppression]]
rule = "unused-listening-port"
port = 8080
reason = "health-check endpoint, probed only by the load balancer"
expires = 2026-12-31

[[suppression]]  # does not match: the telnet peer is 198.51.100.7
rule = "insecure-client-login"
remote = "203.0.113.0/24"
reason = "lab routers only speak telnet"

[[suppression]]
rule = "insecure-client-general"
remote = "203.0.113.0/24"
reason = "the package mirror had no TLS"
expires = 2026-01-31
"""


@pytest.fixture(scope="session")
def report() -> Report:
    """The sample report (7 findings), nothing suppressed."""
    return sample_report()


@pytest.fixture(scope="session")
def suppressed_report(report: Report) -> Report:
    """The sample report with SUPPRESSIONS applied on TODAY."""
    entries = parse_suppressions(SUPPRESSIONS, name="rba-suppressions.toml")
    return apply_suppressions(report, entries, today=TODAY)


@pytest.fixture(scope="session")
def ocsf_errors() -> Callable[[dict[str, Any]], list[str]]:
    """Schema errors of one OCSF event (empty when valid), by its class_uid."""
    import jsonschema

    # No ocsf-json-schema release supports Python 3.9 (pyproject's test extra says so).
    pytest.importorskip("ocsf_json_schema", reason="ocsf-json-schema needs Python >= 3.10")
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.5.0"))
    validators: dict[int, Any] = {}

    def errors(event: dict[str, Any]) -> list[str]:
        uid = event.get("class_uid")
        if not isinstance(uid, int):
            return ["class_uid missing"]
        if uid not in validators:
            name = schema.lookup_class_name_from_uid(class_uid=uid)
            validators[uid] = jsonschema.Draft202012Validator(
                schema.get_class_schema(name, []),
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validators[uid].iter_errors(event)
        ]

    return errors
