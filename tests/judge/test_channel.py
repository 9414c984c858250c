"""Framed messages over a pipe: a tensor's bytes arrive whole, from the CPU or from a GPU."""

import os
import threading

import pytest


def _round_trip(payload, monkeypatch):
    from builder.judge import channel

    monkeypatch.setattr(channel, "CHUNK_BYTES", 1000)  # the payload spans several chunks and a short last one
    read_fd, write_fd = os.pipe()
    reader, writer = channel.open_pair(read_fd, write_fd)
    sender = threading.Thread(target=lambda: (channel.send(writer, {"part": "data"}, payload), writer.close()))
    sender.start()
    header, raw = channel.receive(reader, max_payload=1 << 20)
    sender.join()
    reader.close()
    return header, raw


def test_a_tensors_bytes_cross_in_chunks_whatever_its_dtype(monkeypatch):
    import torch

    from builder.judge.inputs import flat_bytes

    values = torch.arange(900, dtype=torch.float32).reshape(30, 30).t()  # not contiguous: sent in logical order
    header, raw = _round_trip(flat_bytes(values), monkeypatch)
    assert header == {"part": "data", "nbytes": 3600}
    assert torch.equal(raw.view(torch.float32).reshape(30, 30), values)
    header, raw = _round_trip(torch.arange(300, dtype=torch.int64), monkeypatch)  # a payload of another dtype
    assert header["nbytes"] == 2400 and torch.equal(raw.view(torch.int64), torch.arange(300))


@pytest.mark.gpu
def test_a_gpu_tensors_bytes_cross_through_the_pinned_buffer_chunk_by_chunk(monkeypatch):
    import torch

    from builder.judge import channel
    from builder.judge.inputs import flat_bytes

    monkeypatch.setattr(channel, "_staging", None)
    values = torch.randn(1000, 7, device="cuda")
    header, raw = _round_trip(flat_bytes(values), monkeypatch)
    assert header["nbytes"] == 28000 and torch.equal(raw.view(torch.float32).reshape(1000, 7), values.cpu())
    assert channel._staging.is_pinned()


def _link():
    """A parent's end and a child's end of one channel, in this process."""
    from builder.judge import channel

    with channel.Channel.for_child() as (parent, child_in, child_out):
        return parent, channel.Channel.of_child(os.dup(child_in), os.dup(child_out))


def _exchange(parent, child, header, payload):
    sender = threading.Thread(target=lambda: child.send(header, payload))
    sender.start()
    try:
        return parent.receive(max_payload=1 << 24)
    finally:
        sender.join()


def test_a_large_payload_from_a_child_crosses_as_a_sealed_file_and_a_small_one_through_the_pipe():
    import torch

    from builder.judge import channel

    parent, child = _link()
    try:
        big = torch.arange(channel.SHARE_MIN_BYTES // 4, dtype=torch.float32)
        header, raw = _exchange(parent, child, {"part": "data"}, big)
        assert header == {"part": "data", "nbytes": big.numel() * 4, "shared": True}
        assert torch.equal(raw.view(torch.float32), big)
        raw[0] = 7  # the judge's mapping is its own to change
        small = torch.arange(10, dtype=torch.int64)
        header, raw = _exchange(parent, child, {"part": "data"}, small)
        assert header == {"part": "data", "nbytes": 80} and torch.equal(raw.view(torch.int64), small)
        child.send({"ok": True})  # a message without payload between them
        assert parent.receive() == ({"ok": True}, None)
    finally:
        parent.close()
        child.close()


def test_where_no_sealed_file_can_be_made_a_large_payload_goes_through_the_pipe(monkeypatch):
    import torch

    from builder.judge import channel

    def refuse(*_):
        raise OSError("no memory files here")

    monkeypatch.setattr(channel.os, "memfd_create", refuse)
    parent, child = _link()
    try:
        big = torch.ones(channel.SHARE_MIN_BYTES, dtype=torch.uint8)
        header, raw = _exchange(parent, child, {"part": "data"}, big)
        assert "shared" not in header and torch.equal(raw, big)
    finally:
        parent.close()
        child.close()


def _forge(parent, child, fd, nbytes):
    """What a sandbox that writes its own header and passes a file of its choosing sends."""
    import json
    import socket
    import struct

    socket.send_fds(child.share_out, [b"m"], [fd])
    raw = json.dumps({"part": "data", "nbytes": nbytes, "shared": True}).encode()
    child.writer.write(struct.pack(">I", len(raw)) + raw)
    child.writer.flush()
    return parent.receive(max_payload=1 << 24)


@pytest.mark.parametrize("case", ["unsealed", "writable", "short", "long", "pipe", "regular_file", "empty"])
def test_a_shared_payload_is_taken_only_from_a_memory_file_sealed_against_change_of_the_size_announced(case, tmp_path):
    import fcntl

    from builder.judge import channel

    parent, child = _link()
    fd = os.memfd_create("forged", os.MFD_ALLOW_SEALING)
    os.write(fd, b"x" * 4096)
    seals = {"unsealed": 0, "writable": fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW}.get(
        case, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    nbytes = {"short": 4097, "long": 4095, "empty": 0}.get(case, 4096)
    if case == "pipe":
        fd, _ = os.pipe()
    if case == "regular_file":
        (tmp_path / "f").write_bytes(b"x" * 4096)
        fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(channel.ProtocolError):
            _forge(parent, child, fd, nbytes)
    finally:
        parent.close()
        child.close()


def test_a_shared_payload_is_refused_on_a_channel_that_takes_none():
    import torch

    from builder.judge import channel

    parent, child = _link()
    parent.share_in = None
    try:
        with pytest.raises(channel.ProtocolError):
            _exchange(parent, child, {"part": "data"}, torch.ones(channel.SHARE_MIN_BYTES, dtype=torch.uint8))
    finally:
        parent.close()
        child.close()


def test_a_sender_that_kept_its_shared_file_cannot_change_what_the_judge_read(monkeypatch):
    """A sandbox keeps a second descriptor and a mapping of its output's file, and tries to change
    the bytes after the judge has them: every way in is refused by the seals."""
    import mmap

    import torch

    from builder.judge import channel

    kept = []
    make = os.memfd_create

    def keeping(*args):
        fd = make(*args)
        kept.append(os.dup(fd))
        return fd

    monkeypatch.setattr(channel.os, "memfd_create", keeping)
    parent, child = _link()
    try:
        big = torch.zeros(channel.SHARE_MIN_BYTES, dtype=torch.uint8)
        _, raw = _exchange(parent, child, {"part": "data"}, big)
        (fd,) = kept
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"\xff" * 16, 0)
        with pytest.raises(PermissionError):
            mmap.mmap(fd, big.numel(), flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 0)
        assert int(raw.count_nonzero()) == 0
    finally:
        for fd in kept:
            os.close(fd)
        parent.close()
        child.close()


@pytest.mark.gpu
def test_a_large_gpu_output_crosses_as_a_sealed_file_through_the_pinned_buffer(monkeypatch):
    import torch

    from builder.judge import channel
    from builder.judge.inputs import flat_bytes

    monkeypatch.setattr(channel, "CHUNK_BYTES", channel.SHARE_MIN_BYTES // 3)  # several chunks, a short last one
    monkeypatch.setattr(channel, "_staging", None)
    parent, child = _link()
    try:
        values = torch.randn(channel.SHARE_MIN_BYTES // 4 + 5, device="cuda")
        header, raw = _exchange(parent, child, {"part": "data"}, flat_bytes(values))
        assert header["shared"] and torch.equal(raw.view(torch.float32), values.cpu())
    finally:
        parent.close()
        child.close()
