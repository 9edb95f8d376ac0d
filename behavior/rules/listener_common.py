"""Shared pieces of the listener rules: the host's own listeners, grouped by port."""

from __future__ import annotations

from behavior.interface import Listener
from behavior.rules.interface import RuleInput, process_ref
from behavior.subjects import ListenerSubject


def host_listeners_by_port(
    inp: RuleInput, transport: str = "tcp"
) -> dict[tuple[int, int], list[Listener]]:
    """The listening sockets (of ``transport``: TCP listeners or bound UDP sockets) of
    this host's services, grouped by (port, owning pid): one service may listen on several
    addresses of one port. Services in containers and other network namespaces count too;
    their process reference names the container."""
    host_netns = inp.facts.host.netns if inp.facts.host else 0
    groups: dict[tuple[int, int], list[Listener]] = {}
    unattributed: dict[tuple[int, int], list[Listener]] = {}  # (port, netns)
    for listener in inp.obs.listeners:
        if listener.transport != transport:
            continue
        if listener.pid:
            groups.setdefault((listener.port, listener.pid), []).append(listener)
        else:
            netns = listener.netns or host_netns
            unattributed.setdefault((listener.port, netns), []).append(listener)
    # A socket whose owner could not be attributed joins the only known owner of its port
    # in its network namespace.
    owners: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for (port, pid), members in groups.items():
        for netns in {s.netns or host_netns for s in members}:
            owners.setdefault((port, netns), []).append((port, pid))
    for (port, netns), sockets in unattributed.items():
        known = owners.get((port, netns), [])
        if len(known) == 1:
            groups[known[0]] += sockets
        else:
            groups.setdefault((port, 0), []).extend(sockets)
    return groups


def listener_subject(inp: RuleInput, listeners: list[Listener]) -> ListenerSubject:
    """Port, bind addresses and owning process of one service's listening sockets."""
    owner = next((s for s in listeners if s.pid), listeners[0])
    return ListenerSubject(
        port=owner.port,
        bind_addresses=tuple(sorted({s.address for s in listeners})),
        loopback_only=all(s.loopback_only for s in listeners),
        process=process_ref(inp, owner.pid, uid=owner.uid, comm=owner.comm),
        transport=owner.transport,
    )


def listener_sources(listeners: list[Listener]) -> list[str]:
    """How the listening sockets were observed (the first detail of a listener finding)."""
    return sorted({src for s in listeners for src in s.sources})
