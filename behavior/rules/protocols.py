"""Which protocols are cleartext, by port and by program, for the protocol rules.

The evidence of every protocol finding names its ``basis``: ``port`` (a well-known port
number), ``program`` (a program that only speaks that protocol, on any port) or
``content`` (what the connection carried; needs payload classification)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    """A cleartext protocol: its label and whether it carries logins."""

    name: str
    login: bool


TELNET = Protocol("telnet", login=True)
RLOGIN = Protocol("rlogin", login=True)
RSH = Protocol("rsh", login=True)
REXEC = Protocol("rexec", login=True)
FTP = Protocol("ftp", login=True)
HTTP = Protocol("http", login=False)
SMTP = Protocol("smtp", login=False)
POP3 = Protocol("pop3", login=False)
IMAP = Protocol("imap", login=False)
NNTP = Protocol("nntp", login=False)
LDAP = Protocol("ldap", login=False)
SNMP = Protocol("snmp", login=False)
TFTP = Protocol("tftp", login=False)
VNC = Protocol("vnc", login=False)
X11 = Protocol("x11", login=False)
MQTT = Protocol("mqtt", login=False)
REDIS = Protocol("redis", login=False)
MEMCACHED = Protocol("memcached", login=False)

# Client-side ports (docs/rules.md, insecure-client-login and insecure-client-general).
CLIENT_TCP_PORTS: dict[int, Protocol] = {
    23: TELNET,
    513: RLOGIN,
    514: RSH,
    512: REXEC,
    21: FTP,
    80: HTTP,
    25: SMTP,
    587: SMTP,
    110: POP3,
    143: IMAP,
    119: NNTP,
    389: LDAP,
    1883: MQTT,
    6379: REDIS,
    11211: MEMCACHED,
    **{port: VNC for port in range(5900, 5907)},
    **{port: X11 for port in range(6000, 6064)},
}
CLIENT_UDP_PORTS: dict[int, Protocol] = {161: SNMP, 162: SNMP, 69: TFTP, 11211: MEMCACHED}

# Server side (docs/rules.md, insecure-server-protocol): listening TCP ports.
SERVER_TCP_PORTS: dict[int, Protocol] = {
    21: FTP,
    23: TELNET,
    80: HTTP,
    25: SMTP,
    587: SMTP,
    110: POP3,
    143: IMAP,
    512: REXEC,
    513: RLOGIN,
    514: RSH,
    389: LDAP,
    **{port: VNC for port in range(5900, 5907)},
}

# Bound UDP ports (insecure-server-protocol's UDP services).
SERVER_UDP_PORTS: dict[int, Protocol] = {161: SNMP, 162: SNMP, 69: TFTP, 11211: MEMCACHED}

# Programs that speak only one cleartext protocol, whatever port they use.
SERVER_PROGRAMS: dict[str, Protocol] = {
    "vsftpd": FTP,
    "proftpd": FTP,
    "pure-ftpd": FTP,
    "in.ftpd": FTP,
    "ftpd": FTP,
    "telnetd": TELNET,
    "in.telnetd": TELNET,
    "rshd": RSH,
    "in.rshd": RSH,
    "rlogind": RLOGIN,
    "in.rlogind": RLOGIN,
    "rexecd": REXEC,
    "in.rexecd": REXEC,
    "in.tftpd": TFTP,
    "tftpd": TFTP,
    "Xvnc": VNC,
    "x11vnc": VNC,
}
CLIENT_PROGRAMS: dict[str, Protocol] = {
    "telnet": TELNET,
    "telnet.netkit": TELNET,
    "inetutils-telnet": TELNET,
    "rlogin": RLOGIN,
    "rsh": RSH,
    "rexec": REXEC,
    "ftp": FTP,
    "netkit-ftp": FTP,
    "inetutils-ftp": FTP,
    "pftp": FTP,
}

# Content labels (probes/classify.py) of cleartext protocols. The other labels say the
# connection was encrypted: tls, ssh, snmp-v3, and "<protocol>+starttls" (upgraded in-band).
CONTENT_CLEARTEXT: dict[str, Protocol] = {
    "telnet": TELNET,
    "rlogin": RLOGIN,
    "rsh": RSH,
    "ftp": FTP,
    "http": HTTP,
    "smtp": SMTP,
    "pop3": POP3,
    "imap": IMAP,
    "ldap": LDAP,
    "snmp-v1": SNMP,
    "snmp-v2c": SNMP,
    "tftp": TFTP,
    "redis": REDIS,
    "rfb": VNC,
    "mqtt": MQTT,
}

# busybox runs applets as `busybox telnetd ...`: the applet is the program.
_MULTICALL = frozenset({"busybox", "toybox"})


def program_names(comm: str, exe: str, cmdline: str) -> list[str]:
    """The names a process goes by: comm, exe base name, argv[0] (and a busybox applet)."""
    words = cmdline.split()
    names = [comm, os.path.basename(exe)]
    if words:
        names.append(os.path.basename(words[0]))
        if names[-1] in _MULTICALL and len(words) > 1:
            names.append(words[1])
    return [n for n in names if n]


def classify_content(labels: tuple[str, ...]) -> tuple[Protocol, str] | None:
    """(protocol, "content") for the cleartext protocol among a connection's content
    labels (a login protocol first), or None when every label is an encrypted one."""
    found = [CONTENT_CLEARTEXT[label] for label in labels if label in CONTENT_CLEARTEXT]
    if not found:
        return None
    return max(found, key=lambda p: p.login), "content"


def classify_client(
    port: int, transport: str, names: list[str], labels: tuple[str, ...] = ()
) -> tuple[Protocol, str] | None:
    """(protocol, basis) of an outbound connection, or None when not cleartext. Content
    labels, when the connection has any, decide over port and program."""
    if labels:
        return classify_content(labels)
    table = CLIENT_UDP_PORTS if transport == "udp" else CLIENT_TCP_PORTS
    if port in table:
        return table[port], "port"
    if transport == "tcp":
        for name in names:
            if name in CLIENT_PROGRAMS:
                return CLIENT_PROGRAMS[name], "program"
    return None


def classify_server(
    port: int, names: list[str], labels: tuple[str, ...] = (), transport: str = "tcp"
) -> tuple[Protocol, str] | None:
    """(protocol, basis) of a TCP listener or bound UDP socket, or None when not a known
    cleartext service. Content labels of the connections it accepted (the datagrams it
    was sent), when known, decide over the rest."""
    if labels:
        return classify_content(labels)
    for name in names:
        if name in SERVER_PROGRAMS:
            return SERVER_PROGRAMS[name], "program"
    table = SERVER_UDP_PORTS if transport == "udp" else SERVER_TCP_PORTS
    if port in table:
        return table[port], "port"
    return None
