"""A small safetensors reader that needs torch alone; exported model files carry a copy of it.

The format: 8 bytes (little-endian u64) giving the header's length, a JSON header mapping each
tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data section,
which follows the header), and an optional "__metadata__" entry.
"""
from __future__ import annotations

import json
import math
import sys

import torch
from torch import nn

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """Every tensor in the safetensors file at `path`; raises ValueError on a malformed file."""
    if sys.byteorder != "little":
        raise ValueError("reading safetensors needs a little-endian machine")
    with open(path, "rb") as file:
        data = bytearray(file.read())
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > min(MAX_HEADER_BYTES, len(data) - 8):
        raise ValueError(f"{path}: not a safetensors file (header length {header_len} is impossible)")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"{path}: corrupted safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupted safetensors header (not a JSON object)")
    start, size = 8 + header_len, len(data) - 8 - header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = SAFETENSORS_DTYPES[info["dtype"]]
            shape = [int(n) for n in info["shape"]]
            begin, end = (int(n) for n in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: corrupted safetensors entry {name!r}") from None
        count = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= size or end - begin != count * itemsize:
            raise ValueError(f"{path}: tensor {name!r} does not fit its shape or the file")
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:  # clone: an owned, aligned copy instead of a view into the file's bytes
            flat = torch.frombuffer(data, dtype=dtype, count=count, offset=start + begin)
            tensors[name] = flat.reshape(shape).clone()
    return tensors


def load_weights(model: nn.Module, path: str) -> nn.Module:
    """Load the safetensors file at `path` into `model`: every key must match, shapes included."""
    state = read_safetensors(path)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise ValueError(f"{path}: weights do not match the model ({what}, "
                         f"{len(missing)} missing, {len(unexpected)} unexpected)")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, the model needs "
                             f"{tuple(expected[name].shape)}")
    model.load_state_dict(state, strict=True)
    return model
