"""Trained weights on disk: safetensors files (never pickles), checked against their SHA-256 on load.

Files are written to a temporary name and renamed, so a killed process never leaves half a file
under a name the database points to.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from einsearch.storage.engine import StoreError

if TYPE_CHECKING:  # torch and safetensors are imported where weights are read or written
    import torch


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_weights(path: Path, state_dict: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Save `state_dict` to `path` (safetensors) and return the file's SHA-256."""
    from safetensors.torch import save_file

    # Own, contiguous CPU copies: safetensors refuses tensors that share storage (tied weights).
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        digest = sha256_of(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def read_weights(path: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    """The tensors in `path`; StoreError if the file is missing, altered or not safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise StoreError(f"weights file {path} is missing")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise StoreError(f"weights file {path} is corrupted (its SHA-256 differs from the one recorded)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StoreError(f"weights file {path} is not a valid safetensors file ({first})") from None
