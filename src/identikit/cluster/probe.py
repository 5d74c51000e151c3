"""Whether a cluster address answers as Ray does, within a bounded time.

``ray.init(address=...)`` connects to the cluster's GCS (its global control service) over gRPC
and, where something accepts the connection and then says nothing (or says garbage), waits
for it for minutes, retrying inside Ray's C++ core where no Python timeout reaches. So before
Ray is asked, identikit speaks the first steps of the same protocol itself, on a plain socket
with a deadline:

1. gRPC runs over HTTP/2 (RFC 9113). A client opens with the connection preface and a
   SETTINGS frame; a server's first frame MUST be a SETTINGS frame (RFC 9113 §3.4).
2. It then asks the GCS for the cluster's id (``ray.rpc.NodeInfoGcsService/GetClusterId``,
   what Ray's own client asks first, with an empty request) and waits for the reply's
   HEADERS frame on that stream: a gRPC server answering a call. The reply's content is not
   read (a cluster with token authentication answers with a refusal, which is an answer).

A silent listener, one that sends anything but HTTP/2, or one that closes the connection is
refused in one line as soon as that is clear, and within ``wait`` seconds in any case.
"""

from __future__ import annotations

import socket
import struct
import time

from identikit.base.errors import IdentikitError

# RFC 9113 §3.4: what every HTTP/2 client sends first.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
# The largest frame a server may send before we allow more (SETTINGS_MAX_FRAME_SIZE's
# initial value, RFC 9113 §6.5.2): a longer "frame" is not HTTP/2.
MAX_FRAME = 16_384
CALL = "/ray.rpc.NodeInfoGcsService/GetClusterId"
STREAM = 1  # the first stream a client opens


class NotRay(Exception):
    """What the address said instead of answering as Ray (the message says what)."""


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream)


def literal(name: str, value: str) -> bytes:
    """One header field as HPACK's "literal without indexing, new name" (RFC 7541 §6.2.2),
    no Huffman coding: a server decodes it whatever its tables hold."""
    out = b"\x00"
    for text in (name.encode(), value.encode()):
        out += _length(len(text)) + text
    return out


def _length(n: int) -> bytes:
    """An HPACK string length: a 7-bit prefix integer (RFC 7541 §5.1), Huffman bit clear."""
    if n < 127:
        return bytes([n])
    out, n = bytearray([127]), n - 127
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def request(authority: str) -> bytes:
    """The preface, our (empty) settings and one unary gRPC call with an empty message."""
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", CALL),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    block = b"".join(literal(name, value) for name, value in fields)
    message = b"\x00" + struct.pack(">I", 0)  # not compressed, 0 bytes: an empty protobuf
    return (
        PREFACE
        + frame(SETTINGS, 0, 0)
        + frame(HEADERS, END_HEADERS, STREAM)
        + block
        + frame(DATA, END_STREAM, STREAM)
        + message
    )


def _read(sock: socket.socket, n: int, deadline: float) -> bytes:
    """Exactly ``n`` bytes, by ``deadline`` (monotonic seconds)."""
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise NotRay("it closed the connection without an answer")
        data += chunk
    return data


def _converse(sock: socket.socket, authority: str, deadline: float) -> None:
    """Send the call and read frames until its answer; :class:`NotRay` where none comes."""
    sock.sendall(request(authority))
    first = True
    while True:
        head = _read(sock, 9, deadline)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:], "big") & 0x7FFFFFFF
        if length > MAX_FRAME or (first and (kind != SETTINGS or stream != 0)):
            raise NotRay("it does not speak HTTP/2, as Ray's gRPC does")
        first = False
        _read(sock, length, deadline)  # the payload: its content is not needed
        if kind == SETTINGS and not flags & ACK:
            sock.sendall(frame(SETTINGS, ACK, 0))  # as a client must (RFC 9113 §6.5.3)
        elif kind == GOAWAY:
            raise NotRay("it refused the connection (HTTP/2 GOAWAY)")
        elif kind == RST_STREAM and stream == STREAM:
            raise NotRay("it refused Ray's first call")
        elif kind == HEADERS and stream == STREAM:
            return


def probe(host: str, port: int, wait: float, *, speak: bool = True) -> None:
    """Return where ``host:port`` answers as Ray's GCS within ``wait`` seconds in all (the
    TCP connection included; ``speak`` False: where it accepts a connection); raise
    :class:`NotRay` or :class:`OSError` (the connection failed, or ``TimeoutError``: nothing
    came in time) otherwise."""
    deadline = time.monotonic() + wait
    with socket.create_connection((host, port), timeout=wait) as sock:
        if speak:
            _converse(sock, f"{host}:{port}", deadline)


def check_answers(address: str, host: str, port: int, wait: float, *, speak: bool = True) -> None:
    """Refuse ``address`` (shown to the user; ``host:port`` is where its GCS listens) in one
    line where it does not answer as Ray within ``wait`` seconds (see :func:`probe`)."""
    try:
        probe(host, port, wait, speak=speak)
    except TimeoutError:
        reason = f"it gave no answer in {wait:g} s"
    except NotRay as exc:
        reason = str(exc)
    except OSError as exc:
        reason = str(exc.strerror or exc)
    else:
        return
    raise IdentikitError(
        f"no Ray cluster answers at {address} ({reason}): start one there with "
        "`ray start --head`, or leave out --address to start Ray on this machine"
    )
