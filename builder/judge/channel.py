"""Framed messages between the judge and a child process (a sandbox, the referee).

A message is a 4-byte big-endian header length, a JSON header, and, when the header says
`"nbytes": N`, N raw bytes (a tensor's contents). Tensors travel as bytes, never as pickles, so
the judge never unpickles anything the sandbox sent. Every read has a size limit: a sandbox that
sends more than the judge asked for breaks the protocol, and the judge treats that as a verdict.

A child's stdin is one end of a Unix socket pair and its stdout a pipe (`Channel.for_child`).
The judge writes commands into the socket; the child writes messages into the pipe. A payload of
SHARE_MIN_BYTES or more from the child does not cross the pipe: the child writes it into a memory
file of its own, seals it against any change (writes, shrinking, growing, new seals) and passes the
file over the socket; the header says `"shared": true`. The judge maps it only when it is
a memory file of exactly the size announced and carries those seals: the kernel then guarantees
that what the judge compares is what it will keep reading, whatever the sender does afterwards.
A benchmark-size output then costs one copy into the file instead of a pipe's two copies and
their system calls, and the judge's read is a mapping, not a copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

#: Largest JSON header the judge accepts.
MAX_HEADER_BYTES = 4 * 1024 * 1024
#: Bytes moved per read or write call when streaming a tensor.
CHUNK_BYTES = 64 * 1024 * 1024
#: The buffer asked for the pipes that carry tensors: Linux's default of 64 KiB moved 0.7 GB/s
#: between two processes of a 2-core machine, 1 MiB (an unprivileged user's default ceiling) 1.25.
PIPE_BYTES = 1 << 20
#: Payloads of at least this many bytes cross as sealed memory files, where a channel can.
SHARE_MIN_BYTES = 1 << 20
_SEALS = 0x0008 | 0x0002 | 0x0004  # F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW (Linux's values)


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


def send(stream: BinaryIO, header: dict[str, Any], payload: Any = None, share: socket.socket | None = None) -> None:
    """Write one message; `payload` is a contiguous tensor (builder.judge.inputs.flat_bytes makes
    one) whose bytes follow the header: a CPU tensor's as they are, a GPU tensor's through one
    pinned host buffer, CHUNK_BYTES at a time, so that no host copy of the whole tensor is made.
    With `share`, a payload of SHARE_MIN_BYTES or more goes into a sealed memory file passed over
    that socket instead (where the file cannot be made, through `stream` after all)."""
    if payload is not None:
        header = {**header, "nbytes": payload.numel() * payload.element_size()}
        if share is not None and header["nbytes"] >= SHARE_MIN_BYTES:
            try:
                fd = _sealed_file(payload)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    socket.send_fds(share, [b"m"], [fd])
                finally:
                    os.close(fd)
                header, payload = {**header, "shared": True}, None
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


def _sealed_file(payload: Any) -> int:
    """A memory file holding `payload`'s bytes, sealed against writes, resizing and further seals."""
    import fcntl

    fd = os.memfd_create("kp-payload", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        # Its pages made at once: writes that grow the file page by page took 1 to 7 s a GiB
        # where these took 0.5 s.
        os.posix_fallocate(fd, 0, payload.numel() * payload.element_size())
        for chunk in _host_chunks(payload):
            while chunk.nbytes:
                chunk = chunk[os.write(fd, chunk):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS | fcntl.F_SEAL_SEAL)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _mapped(share: socket.socket, nbytes: int) -> Any:
    """The shared payload of `nbytes` announced by a header: the memory file passed over `share`,
    mapped copy-on-write once it is shown to be sealed and of that size."""
    import fcntl
    import mmap

    import torch

    try:
        data, fds, flags, _ = socket.recv_fds(share, 1, 1)
    except OSError as exc:
        raise ProtocolError(f"a shared payload's file could not be received: {exc}") from None
    try:
        if data != b"m" or len(fds) != 1 or flags & socket.MSG_CTRUNC:
            raise ProtocolError("a shared payload came without its one file")
        info = os.fstat(fds[0])
        if not stat.S_ISREG(info.st_mode) or info.st_size != nbytes or nbytes == 0:
            raise ProtocolError(f"a shared file of {info.st_size} bytes, not the {nbytes} announced")
        try:
            seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
        except OSError:  # not a memory file
            seals = 0
        if seals & _SEALS != _SEALS:
            raise ProtocolError("a shared file that is not sealed against change")
        mapped = mmap.mmap(fds[0], nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        for fd in fds:
            os.close(fd)
    return torch.frombuffer(mapped, dtype=torch.uint8)


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = bytearray(size)
    view, done = memoryview(data), 0
    while done < size:
        got = stream.readinto(view[done:])
        if not got:
            raise ProtocolError(f"the stream ended after {done} of {size} bytes")
        done += got
    return bytes(data)


def receive(stream: BinaryIO, max_payload: int = 0, share: socket.socket | None = None) -> tuple[dict[str, Any], Any]:
    """Read one message: its header and, if it carries bytes, a uint8 CPU tensor holding them
    (a shared payload, taken from `share`, is a copy-on-write mapping of its sealed file).

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
    if header.get("shared"):
        if share is None:
            raise ProtocolError("a shared payload on a channel that takes none")
        return header, _mapped(share, nbytes)
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


class Channel:
    """One end of a channel: messages are read from `reader` and written to `writer`; payloads
    sent are shared over `share_out`, shared payloads received taken from `share_in` (see the
    module doc)."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO, *, share_out: socket.socket | None = None,
                 share_in: socket.socket | None = None) -> None:
        self.reader, self.writer, self.share_out, self.share_in = reader, writer, share_out, share_in

    @classmethod
    @contextlib.contextmanager
    def for_child(cls) -> Iterator[tuple[Channel, int, int]]:
        """For the block that starts a child: the parent's end of its channel, and the descriptors
        the child takes as its stdin (a socket) and stdout (a pipe). Those two are closed in this
        process after the block; the parent's end too where the block raised."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIPE_BYTES)
        from_child, child_out = os.pipe()
        widen(from_child)
        end = cls(os.fdopen(from_child, "rb"), os.fdopen(os.dup(ours.fileno()), "wb"), share_in=ours)
        child_in = theirs.detach()
        try:
            yield end, child_in, child_out
        except BaseException:
            end.close()
            raise
        finally:
            os.close(child_in)
            os.close(child_out)

    @classmethod
    def of_child(cls, read_fd: int, write_fd: int) -> Channel:
        """The child's end, over (duplicates of) the stdin and stdout `for_child` gave it; over a
        plain pipe as stdin it shares nothing."""
        reader, writer = open_pair(read_fd, write_fd)
        share = None
        if stat.S_ISSOCK(os.fstat(read_fd).st_mode) and hasattr(os, "memfd_create"):
            share = socket.socket(fileno=os.dup(read_fd))
        return cls(reader, writer, share_out=share)

    def send(self, header: dict[str, Any], payload: Any = None) -> None:
        send(self.writer, header, payload, share=self.share_out)

    def receive(self, max_payload: int = 0) -> tuple[dict[str, Any], Any]:
        return receive(self.reader, max_payload, share=self.share_in)

    def close(self) -> None:
        for end in (self.writer, self.reader, self.share_in, self.share_out):
            if end is not None:
                try:
                    end.close()
                except OSError:  # a pipe the other side closed first
                    pass
