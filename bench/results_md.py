"""One benchmark's section of bench/RESULTS.md, written in place, the other sections left alone."""
from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(text: str, path: Path = RESULTS) -> None:
    """`text` is a whole section: its first line is the '## ...' heading it replaces (or appends)."""
    heading = text.splitlines()[0]
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = text.strip() + "\n\n"
    new = pattern.sub(lambda _: block, old, count=1) if pattern.search(old) else old.rstrip() + "\n\n" + block
    path.write_text(new.rstrip() + "\n")
