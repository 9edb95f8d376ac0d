"""Content-based protocol identification: the first bytes of a connection -> a label.

This lives in the probe layer on purpose: the payload bytes the kernel captures reach
this module and nothing else. Callers get a :class:`Verdict` holding only a short label
(``"http"``, ``"tls"``, ``"smtp+starttls"``, ...); the bytes are never stored, logged or
put in an event, a trace or a report.

Inputs are what a connection carried first in each direction:

- ``client``: the client's first few writes, in order (a STARTTLS upgrade needs the
  write after ``STARTTLS`` to be seen as a TLS ClientHello);
- ``server``: the server's first write (``b""`` when not seen).

A verdict is *final* when more bytes could not change it; otherwise the caller may feed
more client payloads and classify again, or settle for the label it has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Labels. Cleartext or not is the rules' business (behavior/rules/protocols.py).
TLS = "tls"
SSH = "ssh"
TELNET = "telnet"
FTP = "ftp"
HTTP = "http"
SMTP = "smtp"
POP3 = "pop3"
IMAP = "imap"
RLOGIN = "rlogin"
RSH = "rsh"
SNMP_V1 = "snmp-v1"
SNMP_V2C = "snmp-v2c"
SNMP_V3 = "snmp-v3"
LDAP = "ldap"
REDIS = "redis"
RFB = "rfb"
MQTT = "mqtt"
TFTP = "tftp"
# A served datagram of no known protocol: counted (a peer used the service), never a label.
DATAGRAM_LABEL = "datagram"
UPGRADED = "+starttls"  # suffix: the cleartext start was upgraded to TLS in-band

# Cleartext protocols with an in-band TLS upgrade, and the client command that asks.
_UPGRADE_COMMANDS = {
    SMTP: re.compile(rb"STARTTLS\r?\n", re.IGNORECASE),
    IMAP: re.compile(rb"\S+ STARTTLS\r?\n", re.IGNORECASE),
    POP3: re.compile(rb"STLS\r?\n", re.IGNORECASE),
    FTP: re.compile(rb"AUTH (TLS|SSL|TLS-C)\r?\n", re.IGNORECASE),
}
_HTTP_METHODS = re.compile(
    rb"(GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) (/|\*|[a-z]+://|[\w.-]+:\d+)"
)
_FTP_COMMANDS = re.compile(rb"(USER|AUTH|FEAT|SYST|OPTS|PASS) ?", re.IGNORECASE)
_SMTP_HELLO = re.compile(rb"(EHLO|HELO|LHLO) ", re.IGNORECASE)
_RESP_ARRAY = re.compile(rb"\*\d{1,6}\r\n\$\d")
_TERMINAL = re.compile(rb"[\w.+-]+(/\d+)?")
MAX_CLIENT_PAYLOADS = 4  # the kernel captures at most this many client writes


@dataclass(frozen=True)
class Verdict:
    """What the bytes say: ``label`` ("" when unrecognised) and whether it is final."""

    label: str
    final: bool


UNKNOWN = Verdict("", final=True)


def classify(client: Sequence[bytes], server: bytes, transport: str = "tcp") -> Verdict:
    """The protocol of a connection from its first payloads (see the module doc)."""
    if transport == "udp":
        if not client:
            return UNKNOWN
        snmp = _snmp(client[0])
        return snmp if snmp.label else _tftp(client[0])
    first = client[0] if client else b""
    for guess in (_encrypted, _telnet, _rcmd, _binary_client, _text_client, _server_banner):
        verdict = guess(first, server, client)
        if verdict is not None:
            return _upgrade(verdict, client)
    if not first or not server:
        return Verdict("", final=False)
    return UNKNOWN


# ---- single guesses: (first client payload, server payload, all client payloads) -----


def _encrypted(first: bytes, server: bytes, _client: Sequence[bytes]) -> Verdict | None:
    if is_tls_hello(first, 1) or is_tls_hello(server, 2):
        return Verdict(TLS, final=True)
    if first.startswith(b"SSH-") or server.startswith(b"SSH-"):
        return Verdict(SSH, final=True)
    return None


def _telnet(first: bytes, server: bytes, _client: Sequence[bytes]) -> Verdict | None:
    if _iac(first) or _iac(server):
        return Verdict(TELNET, final=True)
    return None


def _rcmd(first: bytes, _server: bytes, client: Sequence[bytes]) -> Verdict | None:
    """rlogin and rsh (and rexec) share rcmd's start: ``stderr-port\\0locuser\\0remuser
    \\0command\\0``. rsh asks for a stderr channel (a port number); rlogin sends an
    empty port and ``terminal[/speed]`` as the command."""
    if not re.fullmatch(rb"\d{0,5}\x00.*", first, re.DOTALL):
        return None
    fields = b"".join(client).split(b"\x00")
    if fields[0]:
        return Verdict(RSH, final=True)
    if len(fields) < 5:  # port, locuser, remuser, command and what follows the command
        return Verdict(RLOGIN, final=False)
    return Verdict(RLOGIN if _TERMINAL.fullmatch(fields[3]) else RSH, final=True)


def _binary_client(first: bytes, server: bytes, _client: Sequence[bytes]) -> Verdict | None:
    if _mqtt_connect(first):
        return Verdict(MQTT, final=True)
    if _ldap_message(first, _LDAP_REQUESTS) or _ldap_message(server, _LDAP_RESPONSES):
        return Verdict(LDAP, final=True)
    if _RESP_ARRAY.match(first):
        return Verdict(REDIS, final=True)
    if server.startswith(b"RFB 003.") or server.startswith(b"RFB 004."):
        return Verdict(RFB, final=True)
    return None


def _text_client(first: bytes, server: bytes, client: Sequence[bytes]) -> Verdict | None:
    if _HTTP_METHODS.match(first) or server.startswith(b"HTTP/1."):
        return Verdict(HTTP, final=True)
    if _SMTP_HELLO.match(first):
        return Verdict(SMTP, final=_has_followup(client))
    if server.startswith(b"220") and _FTP_COMMANDS.match(first):
        return Verdict(FTP, final=_has_followup(client))
    return None


def _server_banner(first: bytes, server: bytes, client: Sequence[bytes]) -> Verdict | None:
    line = server.split(b"\n", 1)[0].upper()
    if line.startswith(b"220"):
        if b"FTP" in line:
            return Verdict(FTP, final=_has_followup(client))
        if b"SMTP" in line:
            return Verdict(SMTP, final=_has_followup(client))
        return None
    if line.startswith(b"+OK"):
        return Verdict(POP3, final=_has_followup(client))
    if line.startswith((b"* OK", b"* PREAUTH")):
        return Verdict(IMAP, final=_has_followup(client))
    return None


def _has_followup(client: Sequence[bytes]) -> bool:
    """Whether enough client writes were seen to rule an upgrade in or out."""
    return len(client) >= MAX_CLIENT_PAYLOADS


def _upgrade(verdict: Verdict, client: Sequence[bytes]) -> Verdict:
    """Apply an observed in-band TLS upgrade: the upgrade command, then a ClientHello."""
    command = _UPGRADE_COMMANDS.get(verdict.label)
    if command is None:
        return verdict
    for i, payload in enumerate(client):
        if command.fullmatch(payload):
            if i + 1 < len(client):
                upgraded = is_tls_hello(client[i + 1], 1)
                return Verdict(verdict.label + UPGRADED if upgraded else verdict.label, True)
            return Verdict(verdict.label, final=False)  # asked; the hello is still to come
        if i >= 1:  # a command after the greeting that is not the upgrade: cleartext
            return Verdict(verdict.label, final=True)
    return verdict


# ---- byte-level recognisers ---------------------------------------------------------


def is_tls_hello(data: bytes, handshake_type: int) -> bool:
    """A TLS record header (handshake, version 3.x) carrying a ClientHello (1) or a
    ServerHello (2)."""
    return (
        len(data) >= 6
        and data[0] == 0x16
        and data[1] == 0x03
        and data[2] <= 0x04
        and data[5] == handshake_type
    )


def _iac(data: bytes) -> bool:
    """Telnet option negotiation: IAC followed by WILL, WONT, DO or DONT."""
    return len(data) >= 3 and data[0] == 0xFF and 0xFB <= data[1] <= 0xFE


def _mqtt_connect(data: bytes) -> bool:
    if len(data) < 8 or data[0] != 0x10:
        return False
    i = 1
    while i < 5 and data[i] & 0x80:  # remaining length: 1-4 bytes, 7 bits each
        i += 1
    name = data[i + 1 :]
    return name.startswith((b"\x00\x04MQTT", b"\x00\x06MQIsdp"))


def _ber_header(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(tag, content length, content offset) of the BER element at ``offset``."""
    if offset + 2 > len(data):
        return None
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or start + count > len(data):
            return None
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return tag, length, start


def _ber_integer(data: bytes, offset: int) -> tuple[int, int] | None:
    """(value, offset after) of a short BER INTEGER at ``offset``."""
    header = _ber_header(data, offset)
    if header is None or header[0] != 0x02 or not 1 <= header[1] <= 4:
        return None
    _, length, start = header
    if start + length > len(data):
        return None
    return int.from_bytes(data[start : start + length], "big"), start + length


_SNMP_VERSIONS = {0: SNMP_V1, 1: SNMP_V2C, 3: SNMP_V3}


def _snmp(data: bytes) -> Verdict:
    """SNMP message: SEQUENCE { INTEGER version, community OCTET STRING (v1/v2c) or
    msgGlobalData SEQUENCE (v3), ... }."""
    outer = _ber_header(data, 0)
    if outer is None or outer[0] != 0x30:
        return UNKNOWN
    version = _ber_integer(data, outer[2])
    if version is None or version[0] not in _SNMP_VERSIONS or version[1] >= len(data):
        return UNKNOWN
    expected = 0x30 if version[0] == 3 else 0x04
    if data[version[1]] != expected:
        return UNKNOWN
    return Verdict(_SNMP_VERSIONS[version[0]], final=True)


_TFTP_REQUEST = re.compile(
    rb"\x00[\x01\x02][\x21-\x7e][\x20-\x7e]*\x00(netascii|octet|mail)\x00", re.I
)
_TFTP_CUT = re.compile(rb"\x00[\x01\x02][\x21-\x7e][\x20-\x7e]*\Z")  # name past the capture
_CAPTURE_LEN = 64  # bytes of a payload the kernel captures (RBA_PAYLOAD_LEN)


def _tftp(data: bytes) -> Verdict:
    """A TFTP read or write request (RFC 1350): opcode 1 or 2, file name, mode."""
    cut = len(data) >= _CAPTURE_LEN and _TFTP_CUT.match(data)
    return Verdict(TFTP, final=True) if cut or _TFTP_REQUEST.match(data) else UNKNOWN


# LDAPMessage protocolOp tags ([APPLICATION n]): requests and responses.
_LDAP_REQUESTS = frozenset({0x60, 0x42, 0x63, 0x66, 0x68, 0x4A, 0x6C, 0x6E, 0x50, 0x77})
_LDAP_RESPONSES = frozenset({0x61, 0x64, 0x65, 0x73, 0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x78})


def _ldap_message(data: bytes, ops: frozenset[int]) -> bool:
    """LDAPMessage: SEQUENCE { INTEGER messageID, protocolOp [APPLICATION n] ... }."""
    outer = _ber_header(data, 0)
    if outer is None or outer[0] != 0x30:
        return False
    message_id = _ber_integer(data, outer[2])
    return message_id is not None and message_id[1] < len(data) and data[message_id[1]] in ops
