"""Building, caching and the fallbacks of the C kernels."""
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from einsearch.ops.kernels import loader as cpu_kernels


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty kernel cache and no libraries loaded in this process (restored afterwards)."""
    monkeypatch.setenv("EINSEARCH_KERNEL_CACHE", str(tmp_path))
    cpu_kernels._load_cached.cache_clear()
    yield tmp_path
    cpu_kernels._load_cached.cache_clear()


def test_builds_once_and_reuses_the_cached_library(fresh_cache):
    lib = cpu_kernels.load("selective_scan", "float64")
    assert lib is not None and hasattr(lib, "scan_forward") and hasattr(lib, "scan_backward")
    built = list(fresh_cache.glob("selective_scan-double-*.so"))
    assert len(built) == 1 and not list(fresh_cache.glob("tmp*"))
    stamp = built[0].stat().st_mtime_ns
    cpu_kernels._load_cached.cache_clear()
    assert cpu_kernels.load("selective_scan", "float64") is not None
    assert built[0].stat().st_mtime_ns == stamp
    assert cpu_kernels.load("selective_scan", "float32") is not None
    assert len(list(fresh_cache.glob("selective_scan-*.so"))) == 2


def test_switched_off_or_unsupported_dtype(monkeypatch):
    assert cpu_kernels.load("selective_scan", "float16") is None
    monkeypatch.setenv("EINSEARCH_CPU_KERNELS", "0")
    assert cpu_kernels.load("selective_scan", "float32") is None


def test_no_compiler_falls_back_with_a_warning(fresh_cache, monkeypatch, caplog):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="einsearch.ops.kernels.loader"):
        assert cpu_kernels.load("selective_scan", "float32") is None
    assert "no gcc" in caplog.text and "selective_scan" in caplog.text


def test_failed_build_falls_back_with_a_warning(fresh_cache, monkeypatch, caplog):
    monkeypatch.setattr(cpu_kernels, "FLAGS", (*cpu_kernels.FLAGS, "-fno-such-flag"))
    with caplog.at_level(logging.WARNING, logger="einsearch.ops.kernels.loader"):
        assert cpu_kernels.load("selective_scan", "float32") is None
    assert "building" in caplog.text and "no-such-flag" in caplog.text
    assert not list(fresh_cache.iterdir())  # no partial library left behind


def test_cache_falls_back_to_the_temporary_directory(monkeypatch):
    monkeypatch.delenv("EINSEARCH_KERNEL_CACHE", raising=False)
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    assert cpu_kernels._cache_dir() == Path.home() / ".cache" / "einsearch" / "kernels"
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a home we may not write to
    assert cpu_kernels._cache_dir() == Path(tempfile.gettempdir()) / "einsearch-kernels"
