"""A full AMQP 0-9-1 handshake (PLAIN guest/guest, vhost /): exit 0 when the broker opens the
connection, 1 otherwise. A wedged broker can answer the protocol header and never open a vhost.
Standard library only: CI runs it before anything is installed."""

from __future__ import annotations

import socket
import struct
import sys


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def method(cls: int, meth: int, args: bytes = b"") -> bytes:
    return frame(1, 0, struct.pack(">HH", cls, meth) + args)


def shortstr(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">B", len(data)) + data


def longstr(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the broker closed the connection")
        data += chunk
    return data


def read_method(sock: socket.socket) -> tuple[tuple[int, int], bytes]:
    while True:
        kind, _, size = struct.unpack(">BHI", read_exactly(sock, 7))
        body = read_exactly(sock, size + 1)[:-1]
        if kind == 1:  # a method frame (heartbeats and others are skipped)
            return struct.unpack(">HH", body[:4]), body[4:]


def expect(sock: socket.socket, wanted: tuple[int, int], name: str) -> bytes:
    got, args = read_method(sock)
    if got != wanted:
        raise OSError(f"expected {name} {wanted}, got {got}")
    return args


def check(host: str, port: int, user: str, password: str, vhost: str, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        expect(sock, (10, 10), "connection.start")
        no_properties = b"\x00\x00\x00\x00"
        credentials = longstr(f"\x00{user}\x00{password}".encode())
        sock.sendall(method(10, 11, no_properties + shortstr("PLAIN") + credentials + shortstr("en_US")))
        channel_max, frame_max, _ = struct.unpack(">HIH", expect(sock, (10, 30), "connection.tune")[:8])
        sock.sendall(method(10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))
        sock.sendall(method(10, 40, shortstr(vhost) + shortstr("") + b"\x00"))
        expect(sock, (10, 41), "connection.open-ok")
        sock.sendall(method(10, 50, struct.pack(">H", 200) + shortstr("") + struct.pack(">HH", 0, 0)))


if __name__ == "__main__":
    try:
        check("127.0.0.1", 5672, "guest", "guest", "/", float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
    except OSError as exc:  # TimeoutError and refusals included
        print(f"amqp: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
