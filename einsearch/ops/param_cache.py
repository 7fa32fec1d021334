"""Parameter counts of primitives, kept on disk between processes.

The sampler needs the exact parameter count of every hyperparameter combination it may draw;
counting one means building the module (on the meta device), a few milliseconds each, hundreds
per width. A count depends only on the code of `einsearch.ops`, so the counts are stored in one
JSON file per version of that code: $EINSEARCH_PARAM_CACHE (default ~/.cache/einsearch/params)
/ `counts-<fingerprint>.json`, where the fingerprint hashes every source file of `einsearch.ops`
and torch's version. Edit a primitive and the fingerprint changes, so no stale count is ever
read. Primitives registered from outside `einsearch.ops` (a user's plugin) are counted but never
stored. New counts are written when the process exits (atomically; concurrent writers merge).
Set EINSEARCH_PARAM_CACHE=0 to turn the file off.
"""
from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import tempfile
from pathlib import Path

from einsearch.memo import source_fingerprint, torch_version

log = logging.getLogger(__name__)

_counts: dict[str, int] | None = None
_new: dict[str, int] = {}


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """A hash of every source file of einsearch.ops (path and content) and torch's version."""
    return source_fingerprint(Path(__file__).resolve().parent, torch_version())


def cache_file() -> Path | None:
    """Where the counts of this version of the code live; None when the cache is off."""
    setting = os.environ.get("EINSEARCH_PARAM_CACHE")
    if setting == "0":
        return None
    folder = Path(setting) if setting else Path.home() / ".cache" / "einsearch" / "params"
    return folder / f"counts-{fingerprint()}.json"


def _read(path: Path | None) -> dict[str, int]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}
    except (OSError, ValueError) as err:  # a damaged file is recounted, never trusted
        log.warning("ignoring parameter-count cache %s: %s", path, err)
        return {}


def lookup(key: str) -> int | None:
    global _counts
    if _counts is None:
        _counts = _read(cache_file())
    return _counts.get(key)


def remember(key: str, count: int) -> None:
    if _counts is None:
        lookup(key)
    assert _counts is not None
    _counts[key] = count
    if not _new:
        atexit.register(save)
    _new[key] = count


def save() -> None:
    """Write the counts made in this process (merged with what is on disk now)."""
    path = cache_file()
    if path is None or not _new:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**_read(path), **_new}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".counts-", suffix=".tmp")
        with os.fdopen(fd, "w") as file:
            json.dump(merged, file, separators=(",", ":"))
        os.replace(tmp, path)
        _new.clear()
    except OSError as err:  # a read-only home: counts are simply made again next time
        log.info("could not write the parameter-count cache %s: %s", path, err)
