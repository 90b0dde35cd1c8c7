"""The framed streams of a one-off dyno's rendezvous, as gitpaas's own client asks for them: an
8-byte header (kind, three zero bytes, the length as a big-endian 32-bit number) as Docker frames
its attached streams, then the data.

From the dyno: STDOUT, STDERR, and EXIT (the exit status's digits) last. From the client: STDIN,
EOF (its input ended) and RESIZE (``"ROWS COLUMNS"``)."""

from __future__ import annotations

import ssl
import struct

STDIN, STDOUT, STDERR, EXIT, EOF, RESIZE = 0, 1, 2, 3, 4, 5
_HEADER = struct.Struct(">BxxxL")
#: the largest frame either side accepts
MAX_FRAME = 1 << 20


def frame(kind: int, data: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(data)) + data


def read_frame(stream) -> tuple[int, bytes] | None:
    """The next frame from a socket (its ``recv``); None when the connection ended or broke."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    kind, length = _HEADER.unpack(header)
    if length > MAX_FRAME:
        return None
    data = _read_exactly(stream, length) if length else b""
    return None if data is None else (kind, data)


def _read_exactly(stream, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = stream.recv(size - len(data))
        except (OSError, ssl.SSLError):
            return None
        if not chunk:
            return None
        data += chunk
    return data
