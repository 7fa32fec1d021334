"""Trained weights: safetensors next to the database, verified on load, pruned to the top K."""
from __future__ import annotations

import pytest
import torch

from sqlalchemy import text

from einsearch.storage import Store, StoreError
from einsearch.storage.engine import make_engine, parse_url


def _state(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(4, 3, generator=gen)
    return {"embed.weight": weight, "head.weight": weight, "norm.bias": torch.zeros(3)}  # head tied to embed


def test_save_load_round_trip(sqlite_url, tmp_path, archs, run_eval):
    with Store.open(sqlite_url) as store:
        eval_id = run_eval(store, None, archs[0], 0.5)
        path = store.save_weights(eval_id, _state(0))
        assert path.parent == (tmp_path / "einsearch_artifacts").resolve() and path.suffix == ".safetensors"
        loaded = store.load_weights(eval_id)
        assert set(loaded) == set(_state(0)) and all(torch.equal(loaded[k], v) for k, v in _state(0).items())
        assert store.weights_path(eval_id) == path
        with pytest.raises(StoreError, match="no saved weights"):
            store.load_weights(run_eval(store, None, archs[1], 0.4))


@pytest.mark.parametrize("damage", ["flip_a_byte", "truncate", "garbage", "delete"])
def test_corrupted_weights_are_a_clear_error(sqlite_url, archs, run_eval, damage):
    with Store.open(sqlite_url) as store:
        eval_id = run_eval(store, None, archs[0], 0.5)
        path = store.save_weights(eval_id, _state(1))
        data = bytearray(path.read_bytes())
        if damage == "flip_a_byte":  # inside the tensor data: still parses, only the checksum catches it
            data[-3] ^= 0xFF
            path.write_bytes(data)
        elif damage == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "garbage":
            path.write_bytes(b"\x00" * 8 + b"not safetensors")
        else:
            path.unlink()
        with pytest.raises(StoreError) as err:
            store.load_weights(eval_id)
        assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_unverified_garbage_is_still_refused(sqlite_url, archs, run_eval):
    """A file whose checksum was never recorded is still parsed safely (never unpickled)."""
    with Store.open(sqlite_url) as store:
        eval_id = run_eval(store, None, archs[0], 0.5)
        path = store.save_weights(eval_id, _state(2))
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
        from einsearch.storage import artifacts

        with pytest.raises(StoreError, match="not a valid safetensors"):
            artifacts.read_weights(path, expected_sha256=None)


def test_prune_keeps_the_top_k(sqlite_url, archs, run_eval):
    with Store.open(sqlite_url) as store:
        store.create_search("s", task="toy-causal", strategy="random")
        ids = [run_eval(store, "s", arch, metric, params=100) for arch, metric in zip(archs[:4], (0.1, 0.9, 0.5, 0.7))]
        paths = {i: store.save_weights(i, _state(i)) for i in ids}
        pruned = store.prune_weights("s", keep=2)
        assert sorted(pruned) == sorted([ids[0], ids[2]])
        assert all(paths[i].exists() == (i not in pruned) for i in ids)
        assert store.weights_path(ids[0]) is None and store.load_weights(ids[1])["norm.bias"].shape == (3,)


def test_weights_paths_outside_the_artifacts_dir_are_refused(sqlite_url, tmp_path, archs, run_eval):
    """A database from elsewhere must not make load or prune touch files outside the artifacts directory."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with Store.open(sqlite_url) as store:
        store.create_search("s", task="toy-causal", strategy="random")
        eval_id = run_eval(store, "s", archs[0], 0.5)
        store.save_weights(eval_id, _state(3))
        engine = make_engine(parse_url(sqlite_url))
        with engine.begin() as conn:
            conn.execute(text("UPDATE evaluations SET weights_path = :p"), {"p": "../victim.txt"})
        engine.dispose()
        for action in (lambda: store.load_weights(eval_id), lambda: store.prune_weights("s", keep=0)):
            with pytest.raises(StoreError, match="outside"):
                action()
    assert victim.read_text() == "keep me"
