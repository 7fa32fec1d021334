"""The torch-only safetensors reader against the safetensors package, and on broken files."""
from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from einsearch.export import load_weights, read_safetensors


def test_reads_what_the_safetensors_package_writes(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 5, generator=gen), "f64": torch.randn(4, generator=gen, dtype=torch.float64),
        "f16": torch.randn(2, 3, generator=gen).half(), "bf16": torch.randn(7, generator=gen).bfloat16(),
        "i64": torch.arange(6).view(2, 3), "i8": torch.tensor([-3, 4], dtype=torch.int8),
        "u8": torch.tensor([1, 255], dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
    }
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path), metadata={"arch": "net(8, ...)"})
    got = read_safetensors(str(path))
    assert set(got) == set(tensors)
    for name, tensor in tensors.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape, name
        assert torch.equal(got[name], tensor), name


def _raw(tmp_path, header: bytes, data: bytes = b"") -> str:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return str(path)


@pytest.mark.parametrize("header,data,message", [
    (b"{not json", b"", "not JSON"),
    (b"[1, 2]", b"", "not a JSON object"),
    (json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode(), b"\0" * 4, "does not fit"),
    (json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}).encode(), b"\0" * 8, "does not fit"),
    (json.dumps({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}).encode(), b"\0" * 8, "corrupted"),
    (json.dumps({"w": {"shape": [1]}}).encode(), b"", "corrupted"),
])
def test_broken_files_are_one_clear_error(tmp_path, header, data, message):
    with pytest.raises(ValueError, match=message):
        read_safetensors(_raw(tmp_path, header, data))


def test_truncated_and_tiny_files(tmp_path):
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    with pytest.raises(ValueError, match="shorter than 8 bytes"):
        read_safetensors(str(tiny))
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ValueError, match="impossible"):
        read_safetensors(str(huge))


def test_load_weights_checks_keys_and_shapes(tmp_path):
    torch.manual_seed(0)
    model, other = nn.Linear(3, 2), nn.Linear(3, 2)
    path = tmp_path / "w.safetensors"
    save_file(dict(model.state_dict()), str(path))
    load_weights(other, str(path))
    assert torch.equal(other.weight, model.weight) and torch.equal(other.bias, model.bias)
    with pytest.raises(ValueError, match="has shape"):
        load_weights(nn.Linear(4, 2), str(path))
    with pytest.raises(ValueError, match="do not match"):
        load_weights(nn.Sequential(nn.Linear(3, 2)), str(path))
