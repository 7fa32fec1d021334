"""Named baseline architectures: one grammar template per file in `baselines/NAME.arch`.

A template is an architecture string with placeholders `{dim}` (model width), `{depth}` (how many
times its repeating unit is stacked) and `{heads}` (heads for that width). Lines starting with '#'
are comments; `# tasks: noncausal` marks a baseline that only fits non-causal tasks. Baselines that
use a primitive not registered yet are skipped, with the reason.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from einsearch.errors import UsageError
from einsearch.tasks import Task
from einsearch.grammar import Arch, ArchError, check, parse
from einsearch.ops import list_ops

log = logging.getLogger(__name__)

WIDTHS = (32, 48, 64, 96, 128, 192, 256, 384, 512)
DEFAULT_WIDTH, DEFAULT_DEPTH, MAX_DEPTH = 64, 2, 8
GRAMMAR_WORDS = {"net", "repeat", "block", "parallel", "compose", "seq", "branch", "split", "attend",
                 "permute", "linear", "conv", "act", "norm", "shift"}


@dataclass(frozen=True)
class Template:
    name: str
    text: str  # the architecture with placeholders
    doc: str  # the comment lines
    noncausal_only: bool

    def primitives(self) -> set[str]:
        return set(re.findall(r"([a-z_][a-z0-9_]*)\(", self.text)) - GRAMMAR_WORDS

    def render(self, dim: int, depth: int) -> Arch:
        return parse(self.text.format(dim=dim, depth=depth, heads=heads_for(dim)))


def heads_for(dim: int) -> int:
    """Most heads (of 1, 2, 4, 8) that keep heads at least 16 channels wide."""
    return next(h for h in (8, 4, 2, 1) if dim % h == 0 and dim // h >= 16 or h == 1)


def templates() -> list[Template]:
    out = []
    folder = resources.files("einsearch.search").joinpath("baselines")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".arch"):
            continue
        lines = entry.read_text().splitlines()
        comments = [line.lstrip("# ").strip() for line in lines if line.startswith("#")]
        body = " ".join(line.strip() for line in lines if line.strip() and not line.startswith("#"))
        out.append(Template(entry.name[:-len(".arch")], body,
                            " ".join(c for c in comments if not c.startswith("tasks:")),
                            "tasks: noncausal" in comments))
    return out


def library(task: Task, width: int | None = None, depth: int | None = None,
            max_params: int | None = None) -> tuple[list[tuple[str, Arch]], list[tuple[str, str]]]:
    """(usable baselines as (name, arch), skipped ones as (name, reason)) for `task`.

    Without width/depth the size is the default (64 wide, unit stacked twice); with `max_params`
    the width (and, when only the width is given, the depth) is the largest that fits."""
    registered = {spec.name for spec in list_ops()}
    found, skipped = [], []
    for template in templates():
        missing = sorted(template.primitives() - registered)
        if missing:
            skipped.append((template.name, f"needs primitive(s) not registered yet: {', '.join(missing)}"))
        elif template.noncausal_only and task.causal:
            skipped.append((template.name, f"non-causal only; task {task.name} is causal"))
        else:
            arch = _sized(template, task, width, depth, max_params)
            if arch is None:
                skipped.append((template.name, f"no size fits max_params={max_params}"))
            else:
                found.append((template.name, arch))
    return found, skipped


def baselines(task: Task, width: int | None = None, depth: int | None = None,
              max_params: int | None = None) -> list[tuple[str, Arch]]:
    found, skipped = library(task, width, depth, max_params)
    for name, reason in skipped:
        log.info("baseline %s skipped: %s", name, reason)
    return found


def _sized(template: Template, task: Task, width: int | None, depth: int | None,
           max_params: int | None) -> Arch | None:
    if max_params is None:
        return template.render(width or DEFAULT_WIDTH, depth or DEFAULT_DEPTH)
    if width is not None and depth is None:
        sizes = [(width, d) for d in range(MAX_DEPTH, 0, -1)]
    else:
        sizes = [(w, depth or DEFAULT_DEPTH) for w in ([width] if width else reversed(WIDTHS))]
        if width is None and depth is None:  # too big even at the narrowest: try one unit
            sizes.append((WIDTHS[0], 1))
    for w, d in sizes:
        arch = template.render(w, d)
        try:
            fits = check(arch, task).params <= max_params
        except ArchError:  # e.g. a head size that does not divide this width: try the next size
            continue
        if fits:
            return arch
    return None


def get_baseline(name: str, task: Task, width: int | None = None, depth: int | None = None,
                 max_params: int | None = None) -> Arch:
    found, skipped = library(task, width, depth, max_params)
    for found_name, arch in found:
        if found_name == name:
            return arch
    reasons = dict(skipped)
    if name in reasons:
        raise UsageError(f"baseline {name!r} is not available: {reasons[name]}")
    raise UsageError(f"unknown baseline {name!r}; known: {', '.join(t.name for t in templates())}")
