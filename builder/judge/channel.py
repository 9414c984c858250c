"""Framed messages between the judge and a sandbox process, over a pair of pipes.

A message is a 4-byte big-endian header length, a JSON header, and, when the header says
`"nbytes": N`, N raw bytes (a tensor's contents). Tensors travel as bytes, never as pickles, so
the judge never unpickles anything the sandbox sent. Every read has a size limit: a sandbox that
sends more than the judge asked for breaks the protocol, and the judge treats that as a verdict.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, BinaryIO

#: Largest JSON header the judge accepts.
MAX_HEADER_BYTES = 4 * 1024 * 1024
#: Bytes moved per read or write call when streaming a tensor.
CHUNK_BYTES = 64 * 1024 * 1024
#: The buffer asked for the pipes that carry tensors: Linux's default of 64 KiB moved 0.7 GB/s
#: between two processes of a 2-core machine, 1 MiB (an unprivileged user's default ceiling) 1.25.
PIPE_BYTES = 1 << 20


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message, or too much of it."""


def widen(*streams: Any) -> None:
    """Ask for PIPE_BYTES of buffer on each pipe (a pipe's buffer is shared by its two ends);
    where Linux refuses (another OS, a user over its pipe quota), a pipe keeps its own."""
    import fcntl

    for stream in streams:
        try:
            fcntl.fcntl(stream if isinstance(stream, int) else stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031),
                        PIPE_BYTES)
        except (OSError, ValueError):
            pass


def send(stream: BinaryIO, header: dict[str, Any], payload: Any = None) -> None:
    """Write one message; `payload` is a contiguous tensor (builder.judge.inputs.flat_bytes makes
    one) whose bytes follow the header: a CPU tensor's as they are, a GPU tensor's through one
    pinned host buffer, CHUNK_BYTES at a time, so that no host copy of the whole tensor is made."""
    if payload is not None:
        header = {**header, "nbytes": payload.numel() * payload.element_size()}
    raw = json.dumps(header, default=str).encode()
    stream.write(struct.pack(">I", len(raw)) + raw)
    if payload is not None:
        for chunk in _host_chunks(payload):
            stream.write(chunk)
    stream.flush()


_staging: Any = None  # the pinned host buffer a GPU tensor's bytes pass through, made on first use


def _host_chunks(payload: Any) -> Any:
    """`payload`'s bytes as host memory views of at most CHUNK_BYTES each; a GPU tensor's share one
    pinned buffer, so each view must be written before the next is taken."""
    global _staging
    import torch

    from builder.judge.inputs import host_buffer

    if payload.device.type == "cpu":
        data = memoryview(payload.numpy()).cast("B")
        for start in range(0, data.nbytes, CHUNK_BYTES):
            yield data[start:start + CHUNK_BYTES]
        return
    if _staging is None:
        _staging = host_buffer(CHUNK_BYTES, torch.uint8, pinned=True)
    flat, step = payload.reshape(-1).view(torch.uint8), _staging.numel()
    for start in range(0, flat.numel(), step):
        part = _staging[:min(step, flat.numel() - start)]
        part.copy_(flat[start:start + part.numel()])
        yield memoryview(part.numpy()).cast("B")


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = bytearray(size)
    view, done = memoryview(data), 0
    while done < size:
        got = stream.readinto(view[done:])
        if not got:
            raise ProtocolError(f"the stream ended after {done} of {size} bytes")
        done += got
    return bytes(data)


def receive(stream: BinaryIO, max_payload: int = 0) -> tuple[dict[str, Any], Any]:
    """Read one message: its header and, if it carries bytes, a uint8 CPU tensor holding them.

    A payload larger than `max_payload` bytes is refused before it is read.
    """
    import torch

    (length,) = struct.unpack(">I", _read_exact(stream, 4))
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"a header of {length} bytes is over the {MAX_HEADER_BYTES}-byte limit")
    try:
        header = json.loads(_read_exact(stream, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"a header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("a header is not a JSON object")
    nbytes = header.get("nbytes")
    if nbytes is None:
        return header, None
    if not isinstance(nbytes, int) or nbytes < 0 or nbytes > max_payload:
        raise ProtocolError(f"a payload of {nbytes} bytes is not the {max_payload} or fewer asked for")
    buffer = torch.empty(nbytes, dtype=torch.uint8)
    view = memoryview(buffer.numpy()).cast("B")
    done = 0
    while done < nbytes:
        got = stream.readinto(view[done:done + CHUNK_BYTES])
        if not got:
            raise ProtocolError(f"the stream ended after {done} of {nbytes} payload bytes")
        done += got
    return header, buffer


def open_pair(read_fd: int, write_fd: int) -> tuple[BinaryIO, BinaryIO]:
    """Buffered binary streams over two file descriptors."""
    return os.fdopen(read_fd, "rb", buffering=0), os.fdopen(write_fd, "wb", buffering=CHUNK_BYTES)
