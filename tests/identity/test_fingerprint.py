"""Fingerprints: the same subject on the same host keeps its fingerprint whatever its pid,
time or count; another host or another subject gets another one. Findings come from the
real assessment core over synthetic events (tests/formats/sample.py)."""

from __future__ import annotations

import dataclasses

from behavior.facts.interface import HostFact
from behavior.interface import Finding
from behavior.rules.interface import with_fingerprints
from behavior.subjects import (
    ContainerRef,
    ListenerSubject,
    ProcessRef,
    fingerprint,
    host_key,
    subject_from_evidence,
)
from tests.formats.sample import sample_report

HOST_A = HostFact("web-1", "6.1", 1, machine_id="a" * 32)
HOST_B = HostFact("web-1", "6.1", 1, machine_id="b" * 32)


def _listener(pid: int, addresses: tuple[str, ...] = ("0.0.0.0",)) -> ListenerSubject:
    process = ProcessRef(pid, "/usr/sbin/vsftpd", f"vsftpd --pid {pid}", "vsftpd", "root", 0)
    return ListenerSubject(21, addresses, False, process)


def test_a_listener_restarted_with_a_new_pid_keeps_its_fingerprint() -> None:
    key = host_key(HOST_A.machine_id, HOST_A.hostname)
    first = fingerprint(key, "insecure-server-protocol", _listener(100))
    assert fingerprint(key, "insecure-server-protocol", _listener(4242)) == first
    # Another wildcard address is the same bind scope; loopback only is not.
    assert fingerprint(key, "insecure-server-protocol", _listener(5, ("::",))) == first
    loopback = dataclasses.replace(
        _listener(100), bind_addresses=("127.0.0.1",), loopback_only=True
    )
    assert fingerprint(key, "insecure-server-protocol", loopback) != first
    assert fingerprint(key, "unused-listening-port", _listener(100)) != first


def test_two_hosts_get_different_fingerprints_for_the_same_subject() -> None:
    findings = list(sample_report().findings)
    on_a = [f.fingerprint for f in with_fingerprints(findings, HOST_A)]
    on_b = [f.fingerprint for f in with_fingerprints(findings, HOST_B)]
    assert len(set(on_a)) == len(on_a) == 7
    assert not set(on_a) & set(on_b)
    # A rename does not change the host: the machine id keys it.
    renamed = dataclasses.replace(HOST_A, hostname="web-2")
    assert [f.fingerprint for f in with_fingerprints(findings, renamed)] == on_a


def test_pids_times_and_counts_do_not_enter_the_fingerprint() -> None:
    for found in sample_report().findings:
        assert found.subject is not None and found.fingerprint
        shifted = _with_other_pids(found)
        assert shifted.subject != found.subject
        (again,) = with_fingerprints([shifted], HostFact("testhost", "6.1", 1))
        assert again.fingerprint == found.fingerprint, found.rule_id


def _with_other_pids(found: Finding) -> Finding:
    """The finding as another run would see it: other pids, later, more often."""
    evidence = _bump_pids(found.evidence)
    subject = subject_from_evidence(found.rule_id, evidence)
    return dataclasses.replace(
        found, evidence=evidence, subject=subject, count=found.count + 5, first_seen="x"
    )


def _bump_pids(value: object) -> object:  # type: ignore[return]
    if isinstance(value, dict):
        return {
            k: (v + 1000 if k.endswith("pid") and isinstance(v, int) else _bump_pids(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [v + 1000 if isinstance(v, int) else _bump_pids(v) for v in value]
    return value


def test_a_container_is_part_of_the_identity() -> None:
    key = host_key("", "h")
    plain = _listener(1)
    boxed = dataclasses.replace(
        plain, process=dataclasses.replace(plain.process, container=ContainerRef("c1", "podman"))
    )
    assert fingerprint(key, "unused-listening-port", plain) != fingerprint(
        key, "unused-listening-port", boxed
    )


def test_evidence_reads_back_into_the_subject_it_came_from() -> None:
    for found in sample_report().findings:
        assert subject_from_evidence(found.rule_id, found.evidence) == found.subject
