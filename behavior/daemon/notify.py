"""systemd's readiness protocol (sd_notify), without libsystemd.

With ``Type=notify`` systemd waits for ``READY=1`` before it considers the service
started, so ``systemctl start rba`` returns once the control socket answers. Outside
systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; False when not under systemd or
    the message could not be sent (never raises: readiness is advisory). Never blocks
    either: a receiver that does not read (its queue full) must not stop the daemon."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(address)
        sock.send(state.encode())
        return True
    return False
