"""Parameter counts kept on disk: exact, reused by a later process, keyed by the ops code."""
import json

import pytest
import torch

from einsearch.ops import count_params, create, list_ops, param_cache
from einsearch.ops import registry


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EINSEARCH_PARAM_CACHE", str(tmp_path))
    monkeypatch.setattr(param_cache, "_counts", None)
    monkeypatch.setattr(param_cache, "_new", {})
    registry._count_params.cache_clear()
    yield tmp_path
    registry._count_params.cache_clear()


CASES = [("attention", 64, True, {"heads": 4}), ("mamba", 64, True, {}), ("moe", 128, False, {}),
         ("mlp_mixer", 64, False, {}), ("hyena", 32, True, {})]


def test_counts_are_exact_and_reused_from_disk(fresh_cache, monkeypatch):
    names = {spec.name for spec in list_ops()}
    cases = [case for case in CASES if case[0] in names]
    assert len(cases) >= 3
    counted = {}
    for name, dim, causal, hp in cases:
        real = create(name, dim, causal=causal, seq_len=32, **hp)  # built for real, on the CPU
        counted[name] = count_params(name, dim, causal, hp, seq_len=32)
        assert counted[name] == sum(p.numel() for p in real.parameters())
    param_cache.save()
    path = param_cache.cache_file()
    assert path.parent == fresh_cache and path.name == f"counts-{param_cache.fingerprint()}.json"
    assert len(json.loads(path.read_text())) == len(cases)

    # A new process: nothing in memory, and building modules is not allowed: every count comes from disk.
    monkeypatch.setattr(param_cache, "_counts", None)
    registry._count_params.cache_clear()
    monkeypatch.setattr(registry, "count_module_params", lambda make: pytest.fail("counted again"))
    assert {name: count_params(name, dim, causal, hp, seq_len=32) for name, dim, causal, hp in cases} == counted


def test_a_damaged_or_foreign_file_is_recounted(fresh_cache):
    path = param_cache.cache_file()
    path.write_text("{not json")
    assert count_params("mlp", 64, True, {}) == sum(p.numel() for p in create("mlp", 64, causal=True).parameters())


def test_cache_off(monkeypatch):
    monkeypatch.setenv("EINSEARCH_PARAM_CACHE", "0")
    assert param_cache.cache_file() is None


def test_counting_skips_random_initialisation_but_keeps_shapes():
    from torch import nn

    count = registry.count_module_params(lambda: nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 8)))
    assert count == 100 * 16 + 16 * 8 + 8
    assert torch.randn(2).device.type == "cpu"  # the modes are gone afterwards
