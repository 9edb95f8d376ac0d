"""Tiny stand-alone servers the e2e tests start as their own processes (stdlib only, run
with Debian's /usr/bin/python3), so every listener has its own pid and program:

- ``inetd``: an inetd-style accept loop that execs a program per connection with the
  socket as stdin/stdout/stderr (inetutils telnetd is inetd-only);
- ``https``: python's http.server behind TLS with a given certificate;
- ``hold``: a plain TCP listener that accepts, reports ``accepted <peer>`` on stdout and
  keeps each connection open until the peer closes it;
- ``smtp``: a minimal SMTP receiver that offers STARTTLS when given a certificate and
  discards the mail (Debian's MTAs want a whole mail system configured).

Usage: python3 serve.py {inetd,https,hold,smtp} --bind IP --port PORT [--exec PROGRAM] [...]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import signal
import socket
import ssl
import threading


def _listen(bind: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(16)
    return sock


def inetd(bind: str, port: int, argv: list[str]) -> None:
    """Accept forever; per connection fork and exec ``argv`` on the socket."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    listener = _listen(bind, port)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            for fd in (0, 1, 2):
                os.dup2(conn.fileno(), fd)
            conn.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.execv(argv[0], argv)
        conn.close()


def https(bind: str, port: int, cert: str, key: str, directory: str) -> None:
    """Serve ``directory`` over HTTPS until killed."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer((bind, port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def _drain(conn: socket.socket) -> None:
    with conn:
        while conn.recv(4096):
            pass


def hold(bind: str, port: int) -> None:
    """Accept connections and keep each open until its peer closes it."""
    listener = _listen(bind, port)
    while True:
        conn, peer = listener.accept()
        print(f"accepted {peer[0]}:{peer[1]}", flush=True)
        threading.Thread(target=_drain, args=(conn,), daemon=True).start()


def _smtp_session(conn: socket.socket, context: ssl.SSLContext | None) -> None:
    stream = conn.makefile("rwb")
    tls = False

    def reply(text: bytes) -> None:
        stream.write(text + b"\r\n")
        stream.flush()

    reply(b"220 rba-e2e ESMTP")
    in_data = False
    while line := stream.readline():
        verb = line.split(b" ", 1)[0].strip().upper()
        if in_data:
            in_data = line not in (b".\r\n", b".\n")
            if not in_data:
                reply(b"250 queued")
        elif verb in (b"EHLO", b"HELO"):
            reply(b"250-rba-e2e\r\n250-STARTTLS" if context and not tls else b"250-rba-e2e")
            reply(b"250 8BITMIME")
        elif verb == b"STARTTLS" and context is not None and not tls:
            reply(b"220 ready to start TLS")
            conn = context.wrap_socket(conn, server_side=True)
            stream, tls = conn.makefile("rwb"), True
        elif verb == b"DATA":
            in_data = True
            reply(b"354 end with <CRLF>.<CRLF>")
        elif verb == b"QUIT":
            reply(b"221 bye")
            break
        else:
            reply(b"250 ok")
    conn.close()


def smtp(bind: str, port: int, cert: str | None, key: str | None) -> None:
    """Receive mail (and discard it) until killed; STARTTLS when ``cert`` is given."""
    context = None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    listener = _listen(bind, port)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_smtp_session, args=(conn, context), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["inetd", "https", "hold", "smtp"])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--directory", default=".")
    parser.add_argument("--exec", dest="program", help="inetd: the program run per connection")
    args = parser.parse_args()
    if args.mode == "inetd":
        inetd(args.bind, args.port, [args.program])
    elif args.mode == "https":
        https(args.bind, args.port, args.cert, args.key, args.directory)
    elif args.mode == "smtp":
        smtp(args.bind, args.port, args.cert, args.key)
    else:
        hold(args.bind, args.port)


if __name__ == "__main__":
    main()
