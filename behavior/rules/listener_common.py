"""Shared pieces of the listener rules: the host's own listeners, grouped by port."""

from __future__ import annotations

from behavior.interface import Listener
from behavior.rules.interface import RuleInput, process_ref
from behavior.subjects import ListenerSubject


def host_listeners_by_port(inp: RuleInput) -> dict[tuple[int, int], list[Listener]]:
    """The host's listening sockets (not those of other network namespaces), grouped by
    (port, owning pid): one service may listen on several addresses of one port."""
    host_netns = inp.facts.host.netns if inp.facts.host else 0
    groups: dict[tuple[int, int], list[Listener]] = {}
    for listener in inp.obs.listeners:
        if host_netns and listener.netns not in (0, host_netns):
            continue
        groups.setdefault((listener.port, listener.pid), []).append(listener)
    # A socket whose owner could not be attributed joins the port's only known owner.
    owners: dict[int, list[tuple[int, int]]] = {}
    for port, pid in groups:
        if pid:
            owners.setdefault(port, []).append((port, pid))
    for port, pid in list(groups):
        known = owners.get(port, [])
        if pid == 0 and len(known) == 1:
            groups[known[0]] += groups.pop((port, 0))
    return groups


def listener_subject(inp: RuleInput, listeners: list[Listener]) -> ListenerSubject:
    """Port, bind addresses and owning process of one service's listening sockets."""
    owner = next((s for s in listeners if s.pid), listeners[0])
    return ListenerSubject(
        port=owner.port,
        bind_addresses=tuple(sorted({s.address for s in listeners})),
        loopback_only=all(s.loopback_only for s in listeners),
        process=process_ref(inp, owner.pid, uid=owner.uid, comm=owner.comm),
    )


def listener_sources(listeners: list[Listener]) -> list[str]:
    """How the listening sockets were observed (the first detail of a listener finding)."""
    return sorted({src for s in listeners for src in s.sources})
