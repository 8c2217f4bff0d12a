"""What the launcher and the warm parent say to each other over a Unix socket: length-
prefixed JSON messages, the launcher's standard streams passed along as descriptors.
Standard library only: the launcher imports nothing else."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from typing import Any

_LENGTH = struct.Struct("!I")
# Enough for any environment a worker passes on; a bigger frame is a broken peer.
MOST_BYTES = 4 * 1024 * 1024
STREAMS = 3  # stdin, stdout, stderr


class ProtocolError(OSError):
    """The other side sent something that is not a message, or went away mid-message."""


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    body = json.dumps(message).encode()
    if fds:
        # The descriptors ride on a first byte of their own: a long body may need several
        # writes, and descriptors must arrive with exactly one of them.
        socket.send_fds(sock, [b"F"], fds)
    sock.sendall(_LENGTH.pack(len(body)) + body)


def receive(sock: socket.socket, with_fds: bool = False) -> tuple[dict[str, Any], list[int]]:
    fds: list[int] = []
    if with_fds:
        marker, fds, _flags, _address = socket.recv_fds(sock, 1, STREAMS)
        if marker != b"F" or len(fds) != STREAMS:
            for fd in fds:
                _close_quietly(fd)
            raise ProtocolError("expected the caller's standard streams")
    try:
        (length,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
        if length > MOST_BYTES:
            raise ProtocolError(f"a message of {length} bytes")
        message = json.loads(_exactly(sock, length))
    except (ProtocolError, ValueError) as exc:
        for fd in fds:
            _close_quietly(fd)
        raise ProtocolError(str(exc)) from exc
    if not isinstance(message, dict):
        raise ProtocolError("a message is a JSON object")
    return message, fds


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ProtocolError("the other side closed the connection")
        chunks += chunk
    return bytes(chunks)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
