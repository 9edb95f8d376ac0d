"""Content classification of first payloads (probes/classify.py).

Byte strings marked "captured" were recorded from the real tool on loopback (snmpget 5.9,
netkit rlogin, inetutils telnetd); the live tests capture curl, ssh and snmpget here and
now. The rest follow the protocol specifications byte for byte.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading

import pytest

from probes.classify import Verdict, classify

# captured: snmpget -v2c -c public 127.0.0.1:PORT 1.3.6.1.2.1.1.1.0
SNMP_V2C_GET = (
    b"0)\x02\x01\x01\x04\x06public\xa0\x1c\x02\x04\x01\x94\xc4\xab\x02\x01\x00\x02\x01\x00"
    b"0\x0e0\x0c\x06\x08+\x06\x01\x02\x01\x01\x01\x00\x05\x00"
)
# captured: snmpget -v3 -l noAuthNoPriv -u bob (the engine-discovery request)
SNMP_V3_GET = (
    b"0>\x02\x01\x030\x11\x02\x04`H\xd5\xff\x02\x03\x00\xff\xe3\x04\x01\x04\x02\x01\x03"
    b"\x04\x100\x0e\x04\x00\x02\x01\x00\x02\x01\x00\x04\x00\x04\x00\x04\x000\x14\x04\x00"
    b"\x04\x00\xa0\x0e\x02\x04E\x03x\xbf\x02\x01\x00\x02\x01\x000\x00"
)
SNMP_V1_GET = b"0&\x02\x01\x00\x04\x06public\xa0\x19" + SNMP_V2C_GET[15:]
# captured: inetutils telnetd's first write
TELNETD_HELLO = b"\xff\xfb%\xff\xfb&\xff\xfd\x18\xff\xfd \xff\xfd#\xff\xfd'\xff\xfd$"
# captured: netkit rlogin -l bob
RLOGIN_HELLO = b"\x00root\x00bob\x00xterm\x00"
RSH_HELLO = b"1023\x00root\x00bob\x00id\x00"
CLIENT_HELLO = bytes.fromhex("16030100f8010000f40303") + bytes(40)
SERVER_HELLO = bytes.fromhex("160303007a020000760303") + bytes(40)
LDAP_BIND = bytes.fromhex("300c020101600702010304008000")
LDAP_BIND_RESPONSE = bytes.fromhex("300c02010161070a010004000400")
MQTT_CONNECT = b"\x10\x17\x00\x04MQTT\x04\x02\x00<\x00\x0bmosquitto-1"
MQTT31_CONNECT = b"\x10\x19\x00\x06MQIsdp\x03\x02\x00<\x00\x0bmosquitto-1"


def tcp(client: list[bytes], server: bytes = b"") -> Verdict:
    return classify(client, server, "tcp")


@pytest.mark.parametrize(
    ("client", "server", "label"),
    [
        ([CLIENT_HELLO], b"", "tls"),
        ([], SERVER_HELLO, "tls"),
        ([b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"], b"", "ssh"),
        ([], b"SSH-2.0-OpenSSH_9.2p1\r\n", "ssh"),
        ([], TELNETD_HELLO, "telnet"),
        ([b"\xff\xfd\x03\xff\xfb\x18"], b"", "telnet"),
        ([b"GET / HTTP/1.1\r\nHost: x\r\n"], b"", "http"),
        ([b"POST /api HTTP/1.0\r\n"], b"", "http"),
        ([], b"HTTP/1.0 200 OK\r\n", "http"),
        ([RLOGIN_HELLO], b"", "rlogin"),
        ([RSH_HELLO], b"", "rsh"),
        ([b"\x00", b"root\x00", b"bob\x00", b"xterm/38400\x00"], b"\x00", "rlogin"),
        ([LDAP_BIND], b"", "ldap"),
        ([], LDAP_BIND_RESPONSE, "ldap"),
        ([b"*1\r\n$4\r\nPING\r\n"], b"", "redis"),
        ([b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"], b"+OK\r\n", "redis"),
        ([], b"RFB 003.008\n", "rfb"),
        ([MQTT_CONNECT], b"", "mqtt"),
        ([MQTT31_CONNECT], b"", "mqtt"),
    ],
)
def test_final_labels(client: list[bytes], server: bytes, label: str) -> None:
    assert tcp(client, server) == Verdict(label, final=True)


BANNER_SMTP = b"220 mail.example ESMTP Postfix (Debian/GNU)\r\n"
BANNER_FTP = b"220 (vsFTPd 3.0.3)\r\n"


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        # SMTP: the greeting alone cannot tell whether an upgrade follows.
        ([b"EHLO me\r\n"], BANNER_SMTP, Verdict("smtp", final=False)),
        ([b"EHLO me\r\n", b"MAIL FROM:<a@b>\r\n"], BANNER_SMTP, Verdict("smtp", True)),
        ([b"EHLO me\r\n", b"AUTH PLAIN AGJvYgBwdw==\r\n"], BANNER_SMTP, Verdict("smtp", True)),
        ([b"EHLO me\r\n", b"STARTTLS\r\n"], BANNER_SMTP, Verdict("smtp", final=False)),
        (
            [b"EHLO me\r\n", b"STARTTLS\r\n", CLIENT_HELLO],
            BANNER_SMTP,
            Verdict("smtp+starttls", final=True),
        ),
        ([b"EHLO me\r\n", b"STARTTLS\r\n", b"QUIT\r\n"], BANNER_SMTP, Verdict("smtp", True)),
        ([], BANNER_SMTP, Verdict("smtp", final=False)),
        ([b"HELO me\r\n", b"MAIL FROM:<a@b>\r\n"], b"", Verdict("smtp", True)),
        # FTP: 220 and USER; AUTH TLS then a hello is an upgrade.
        ([b"USER anonymous\r\n", b"PASS x\r\n"], b"220 ready\r\n", Verdict("ftp", True)),
        ([b"USER anonymous\r\n"], BANNER_FTP, Verdict("ftp", final=False)),
        (
            [b"AUTH TLS\r\n", CLIENT_HELLO],
            BANNER_FTP,
            Verdict("ftp+starttls", final=True),
        ),
        ([b"USER bob\r\n", b"PASS pw\r\n"], b"+OK POP3 ready\r\n", Verdict("pop3", True)),
        ([b"STLS\r\n", CLIENT_HELLO], b"+OK POP3 ready\r\n", Verdict("pop3+starttls", True)),
        (
            [b"a1 LOGIN bob pw\r\n", b"a2 SELECT x\r\n"],
            b"* OK IMAP4rev1\r\n",
            Verdict("imap", True),
        ),
        ([b"a1 STARTTLS\r\n", CLIENT_HELLO], b"* OK ready\r\n", Verdict("imap+starttls", True)),
        ([b"\x00"], b"", Verdict("rlogin", final=False)),
    ],
)
def test_upgrades_and_pending(client: list[bytes], server: bytes, expected: Verdict) -> None:
    assert tcp(client, server) == expected


@pytest.mark.parametrize(
    ("datagram", "label"),
    [(SNMP_V1_GET, "snmp-v1"), (SNMP_V2C_GET, "snmp-v2c"), (SNMP_V3_GET, "snmp-v3")],
)
def test_snmp_versions(datagram: bytes, label: str) -> None:
    assert classify([datagram], b"", "udp") == Verdict(label, final=True)


def test_unrecognised_bytes_give_no_label() -> None:
    assert tcp([b"hello there\n"], b"hi\n") == Verdict("", final=True)
    assert tcp([b"hello there\n"], b"") == Verdict("", final=False)
    assert classify([b"\x12\x34 a DNS query"], b"", "udp") == Verdict("", final=True)
    assert classify([LDAP_BIND], b"", "udp").label == ""  # LDAP is not SNMP


def test_truncated_and_random_bytes_never_raise() -> None:
    rng = random.Random(8)
    samples = [SNMP_V2C_GET, SNMP_V3_GET, LDAP_BIND, MQTT_CONNECT, CLIENT_HELLO, RLOGIN_HELLO]
    for sample in samples:
        for cut in range(len(sample)):
            for transport in ("tcp", "udp"):
                classify([sample[:cut]], sample[:cut], transport)
    for _ in range(3000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(65)))
        verdict = classify([blob, blob[::-1]], blob, rng.choice(("tcp", "udp")))
        assert isinstance(verdict.label, str)


# ---- live captures: the real client's first bytes on loopback --------------------------


def _first_bytes(argv: list[str], *, udp: bool = False) -> bytes:
    """The first payload a real client sends to a loopback recorder (``PORT`` in argv)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        argv = [a.replace("PORT", str(server.getsockname()[1])) for a in argv]
        got: list[bytes] = []

        def receive() -> None:
            if udp:
                got.append(server.recvfrom(4096)[0])
                return
            server.listen(1)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                got.append(conn.recv(4096))

        thread = threading.Thread(target=receive)
        thread.start()
        client = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        thread.join(10)
        client.kill()
        client.wait()
    assert got, f"{argv[0]} sent nothing"
    return got[0]


@pytest.mark.parametrize(
    ("argv", "label"),
    [
        (["curl", "-s", "-m", "3", "http://127.0.0.1:PORT/x"], "http"),
        (["curl", "-s", "-m", "3", "-k", "https://127.0.0.1:PORT/"], "tls"),
        (
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-p",
                "PORT",
                "127.0.0.1",
            ],
            "ssh",
        ),
    ],
)
def test_live_tcp_clients(argv: list[str], label: str) -> None:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    first = _first_bytes(argv)
    assert tcp([first[:64]]).label == label


@pytest.mark.parametrize(
    ("version", "label"), [("2c", "snmp-v2c"), ("3", "snmp-v3"), ("1", "snmp-v1")]
)
def test_live_snmpget(version: str, label: str) -> None:
    if shutil.which("snmpget") is None:
        pytest.skip("snmpget not installed (Debian package snmp)")
    auth = ["-l", "noAuthNoPriv", "-u", "bob"] if version == "3" else ["-c", "public"]
    argv = [
        "snmpget",
        f"-v{version}",
        *auth,
        "-r",
        "0",
        "-t",
        "1",
        "127.0.0.1:PORT",
        "1.3.6.1.2.1.1.1.0",
    ]
    datagram = _first_bytes(argv, udp=True)
    assert classify([datagram[:64]], b"", "udp") == Verdict(label, final=True)
