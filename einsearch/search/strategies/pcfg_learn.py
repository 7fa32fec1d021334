"""Estimation of distribution over the grammar: the PCFG's weights re-estimated from the choices
made by the best architectures found so far, smoothed, then sampled from.

With `metric_floor` (a number in the metric's units, or `auto` from the task's plateau, as evolution's),
only candidates that reach it are fitted on, and until one does the weights stay the prior's: on a task
whose candidates mostly sit on a plateau (MQAR's guess among the values in context), the top quarter of
the history is otherwise plateau noise. Measured on MQAR with 16 pairs, it did not beat random, nor pcfg-learn
without it: a refit of per-choice frequencies toward one solver barely moves them (bench/RESULTS.md, "pcfg-learn
with a floor").

The learned weights are the same flat dict the sampler reads (choice point -> alternative -> weight);
`weights_to_toml` writes them so another search can start from them (`read_weights`).
"""
from __future__ import annotations

import logging
import random
import tomllib
from collections import defaultdict
from pathlib import Path

from einsearch.errors import UsageError
from einsearch.grammar import Arch, Node, Sampler
from einsearch.grammar.sampler import load_weights
from einsearch.grammar.tree import format_value, format_width
from einsearch.ops import get_op, list_ops
from einsearch.ops.registry import TOKEN_CATEGORIES
from einsearch.search.base import Strategy
from einsearch.search.registry import register_strategy
from einsearch.search.types import Candidate, Result

log = logging.getLogger(__name__)

Weights = dict[str, dict[str, float]]


def choice_counts(arch: Arch) -> Weights:
    """How often the derivation of `arch` took each alternative at each choice point."""
    counts: Weights = defaultdict(lambda: defaultdict(float))
    root = arch.root
    counts["net.dim"][str(root.args[0])] += 1
    counts["stages"]["more"] += len(root.children) - 1
    counts["stages"]["end"] += 1
    for stage in root.children:
        if stage.kind == "repeat":
            counts["stage"]["repeat"] += 1
            counts["repeat.times"][str(stage.args[0])] += 1
            counts["repeat.blocks"][str(len(stage.children))] += 1
        else:
            counts["stage"]["block"] += 1
        for block in stage.children if stage.kind == "repeat" else (stage,):
            place, kind = block.args
            if place == "none":
                counts["norm"]["no_norm"] += 1
            else:
                counts["norm"]["placed_norm"] += 1
                counts["PLACEMENT"][place] += 1
                counts["NORMKIND"][kind] += 1
            _layer(block.children[0], counts)
    return counts


def _layer(node: Node, counts: Weights) -> None:
    if node.kind == "op":
        category = get_op(node.args[0]).category
        kind = "token_mixer" if category in TOKEN_CATEGORIES else "channel_mixer"
        counts["layer"][kind] += 1
        counts[f"{kind}.category"][category] += 1
        counts[f"{category}.op"][node.args[0]] += 1
        for key, value in node.args[1]:
            counts[f"op.{node.args[0]}.{key}"][format_value(value)] += 1
    elif node.kind == "parallel":
        counts["layer"]["parallel"] += 1
        counts["parallel.agg"][node.args[0] if node.args else "mean"] += 1
        for child in node.children:
            _layer(child, counts)
    else:  # compose
        counts["layer"]["compose"] += 1
        _mod(node.children[0], counts)


_MOD_ARG_TABLE = {"act": "ACT", "conv": "conv.kernel", "shift": "shift.k", "fnorm": "NORMKIND",
                  "branch": "AGG", "split": "AGG", "attend": "SCORE", "linear": "mod.width"}


def _mod(node: Node, counts: Weights) -> None:
    counts["mod"][node.kind] += 1
    table = _MOD_ARG_TABLE.get(node.kind)
    if table:
        value = node.args[0]
        counts[table][format_width(value) if node.kind == "linear" else str(value)] += 1
    for child in node.children:
        _mod(child, counts)


def reestimate(weights: Weights, archs: list[Arch], rate: float, smoothing: float) -> Weights:
    """w <- (1 - rate) w + rate * (counts + smoothing) / total, per choice point with any count;
    only alternatives the grammar already has are counted, and every weight stays positive."""
    total_counts: Weights = defaultdict(lambda: defaultdict(float))
    for arch in archs:
        for table, alts in choice_counts(arch).items():
            for alt, n in alts.items():
                total_counts[table][alt] += n
    learned: Weights = {}
    for table, alts in weights.items():
        norm = sum(alts.values())
        prior = {alt: w / norm for alt, w in alts.items()}
        seen = {alt: total_counts.get(table, {}).get(alt, 0.0) for alt in alts}
        n = sum(seen.values())
        if n == 0:
            learned[table] = prior
            continue
        empirical = {alt: (c + smoothing) / (n + smoothing * len(alts)) for alt, c in seen.items()}
        learned[table] = {alt: (1 - rate) * prior[alt] + rate * empirical[alt] for alt in alts}
    return learned


def weights_to_toml(weights: Weights) -> str:
    """Quoted keys throughout, so dotted table names and decimal alternatives stay single keys."""
    lines = ["# PCFG weights learned by an einsearch pcfg-learn search"]
    for table, alts in weights.items():
        lines.append(f'\n["{table}"]')
        lines.extend(f'"{alt}" = {w:.6g}' for alt, w in alts.items())
    return "\n".join(lines) + "\n"


def read_weights(path: str | Path) -> Weights:
    """Weights written by `weights_to_toml`; every table must be one the grammar knows. Tables of
    compute-only hyperparameters (files from before they stopped being choice points) are skipped."""
    data = tomllib.loads(Path(path).read_text())
    known = load_weights()
    compute_only = {f"op.{spec.name}.{key}" for spec in list_ops() for key in spec.compute_only}
    for table in [t for t in data if t in compute_only]:
        log.info("%s: [%s] ignored: a compute-only hyperparameter, search keeps its default", path, table)
        del data[table]
    for table, alts in data.items():
        if table not in known or not isinstance(alts, dict):
            raise UsageError(f"{path}: unknown choice point {table!r}")
        bad = [alt for alt in alts if alt not in known[table]]
        if bad:
            raise UsageError(f"{path}: [{table}] has unknown alternatives {', '.join(bad)}")
    return {table: {alt: float(w) for alt, w in alts.items()} for table, alts in {**known, **data}.items()}


@register_strategy("pcfg-learn")
class PcfgLearn(Strategy):
    name = "pcfg-learn"

    def __init__(self, *args, weights: Weights | None = None, top_fraction: float = 0.25,
                 refit_every: int = 10, rate: float = 0.5, smoothing: float = 1.0,
                 metric_floor: float | str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.metric_floor = self.floor_from(metric_floor, "candidates that learned nothing will still be fitted on")
        if not 0 < top_fraction <= 1 or not 0 < rate <= 1 or refit_every < 1 or smoothing <= 0:
            raise UsageError("pcfg-learn needs 0 < top_fraction <= 1, 0 < rate <= 1, refit_every >= 1, "
                             "smoothing > 0")
        self.top_fraction, self.refit_every, self.rate, self.smoothing = top_fraction, refit_every, rate, smoothing
        self.weights: Weights = {t: dict(a) for t, a in (weights or load_weights()).items()}
        self.sampler = Sampler(self.task, self.limits, weights=self.weights)
        self._scored: list[tuple[float, Arch]] = []

    def _propose(self, rng: random.Random) -> Candidate:
        return self._emit(self.fresh(Arch(self.sampler.net(rng)), rng), (), "sample")

    def _observe(self, candidate: Candidate, result: Result) -> None:
        score = self.score(result)
        if score is None:
            return
        self._scored.append((score, candidate.arch))
        if len(self._scored) % self.refit_every == 0:
            floor = float("-inf") if self.metric_floor is None else self.floor_as_score(self.metric_floor)
            ranked = sorted((pair for pair in self._scored if pair[0] >= floor), key=lambda pair: pair[0], reverse=True)
            if not ranked:
                return  # nothing learned yet: keep the weights
            top = [arch for _, arch in ranked[:max(1, round(self.top_fraction * len(ranked)))]]
            self.weights = reestimate(self.weights, top, self.rate, self.smoothing)
            self.sampler = Sampler(self.task, self.limits, weights=self.weights)
