"""A full AMQP 0-9-1 handshake (PLAIN guest/guest, vhost /): exit 0 when the broker opens the
connection, 1 otherwise. A broker can answer the protocol header and still never open a vhost."""
import socket, struct, sys

def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"

def method(cls, meth, args=b""):
    return frame(1, 0, struct.pack(">HH", cls, meth) + args)

def shortstr(s):
    b = s.encode(); return struct.pack(">B", len(b)) + b

def longstr(b):
    return struct.pack(">I", len(b)) + b

def read_method(sock):
    head = b""
    while len(head) < 7:
        chunk = sock.recv(7 - len(head))
        if not chunk: raise OSError("closed")
        head += chunk
    kind, _, size = struct.unpack(">BHI", head)
    body = b""
    while len(body) < size + 1:
        chunk = sock.recv(size + 1 - len(body))
        if not chunk: raise OSError("closed")
        body += chunk
    if kind != 1: return read_method(sock)  # heartbeats etc.
    return struct.unpack(">HH", body[:4]), body[4:-1]

def check(host, port, user, password, vhost, timeout):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    assert read_method(s)[0] == (10, 10), "connection.start"
    s.sendall(method(10, 11, b"\x00\x00\x00\x00" + shortstr("PLAIN")
                     + longstr(f"\x00{user}\x00{password}".encode()) + shortstr("en_US")))
    ident, args = read_method(s)
    assert ident == (10, 30), f"connection.tune, got {ident}"
    channel_max, frame_max, _ = struct.unpack(">HIH", args[:8])
    s.sendall(method(10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))
    s.sendall(method(10, 40, shortstr(vhost) + shortstr("") + b"\x00"))
    ident, _ = read_method(s)
    assert ident == (10, 41), f"connection.open-ok, got {ident}"
    s.sendall(method(10, 50, struct.pack(">H", 200) + shortstr("") + struct.pack(">HH", 0, 0)))
    s.close()

try:
    check("127.0.0.1", 5672, "guest", "guest", "/", float(sys.argv[1]) if len(sys.argv) > 1 else 5)
except (OSError, AssertionError) as exc:
    print(f"amqp: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
