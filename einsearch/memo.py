"""Answers computed once per version of the code and kept on disk between processes.

Some answers cost a torch import and seconds of work but depend only on einsearch's own source:
the catalogue of primitives the parser reads, the default of each task, the baselines at a size, the
facts of an architecture on a task. A `DiskMemo` keeps such answers in one JSON file per version of
the code: $EINSEARCH_MEMO (default ~/.cache/einsearch/memo) / `<name>-<fingerprint>.json`, where the
fingerprint hashes every source file of the einsearch package and the installed torch version. Edit
any source and the fingerprint changes, so no stale answer is ever read. Values must be JSON.
New answers are written when the process exits (atomically; concurrent writers merge).
EINSEARCH_MEMO=0 turns the files off (answers are then computed each time). Files of other
versions are removed once they are a week old.

Nothing here imports torch: reading a memo is how the CLI answers without it.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent
SOURCE_SUFFIXES = (".py", ".lark", ".toml", ".c", ".h")
STALE_AFTER_S = 7 * 24 * 3600


def source_fingerprint(root: Path, *extra: str) -> str:
    """A hash of every source file below `root` (path and content) and of `extra` strings."""
    digest = hashlib.sha256("\0".join(extra).encode())
    for path in sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def torch_version() -> str:
    """The installed torch's version, read from its metadata (importing torch takes seconds)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The version of the code a memo belongs to: einsearch's sources and torch's version."""
    return source_fingerprint(PACKAGE_ROOT, torch_version())


def memo_folder() -> Path | None:
    setting = os.environ.get("EINSEARCH_MEMO")
    if setting == "0":
        return None
    return Path(setting) if setting else Path.home() / ".cache" / "einsearch" / "memo"


class DiskMemo:
    """A JSON dict on disk, one per (name, version of the code); `get(key, compute)` computes once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._values: dict[str, Any] | None = None
        self._new: dict[str, Any] = {}

    @property
    def path(self) -> Path | None:
        folder = memo_folder()
        return None if folder is None else folder / f"{self.name}-{code_fingerprint()}.json"

    def _read(self) -> dict[str, Any]:
        path = self.path
        if path is None or not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError) as err:  # a damaged file is recomputed, never trusted
            log.warning("ignoring memo file %s: %s", path, err)
            return {}

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The stored answer for `key`, or `compute()`'s (then stored when the process exits)."""
        if self._values is None:
            self._values = self._read()
        if key in self._values:
            return self._values[key]
        value = compute()
        stored = json.loads(json.dumps(value))  # a snapshot: what later `get`s see, whatever the caller does
        self._values[key] = stored
        if not self._new:
            atexit.register(self.save)
        self._new[key] = stored
        return value

    def save(self) -> None:
        """Write the answers made in this process, merged with what is on disk now."""
        path = self.path
        if path is None or not self._new:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            merged = {**self._read(), **self._new}
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{self.name}-", suffix=".tmp")
            with os.fdopen(fd, "w") as file:
                json.dump(merged, file, separators=(",", ":"))
            os.replace(tmp, path)
            self._new = {}
            self._prune(path)
        except OSError as err:  # a read-only home: answers are simply computed again next time
            log.info("could not write memo file %s: %s", path, err)

    def _prune(self, current: Path) -> None:
        """Remove this memo's files of other versions of the code, once a week old (untouched)."""
        cutoff = time.time() - STALE_AFTER_S
        for other in current.parent.glob(f"{self.name}-*.json"):
            try:
                if other != current and other.stat().st_mtime < cutoff:
                    other.unlink()
            except OSError:  # another process pruned it first
                pass
