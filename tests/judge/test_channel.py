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
