"""Mutated architecture strings through parse, check and build: every one either builds, or raises an
ArchError that says where (line and column, or the subexpression), within a few seconds of CPU time (a guard
against blow-ups, not a speed target). 200 cases in the default run, 10,000 with `pytest -m stress`."""
from __future__ import annotations

import re
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from einsearch import ArchError, build, check, parse, sample
from einsearch.tasks import get_task
from einsearch.ops import list_ops

TASK = get_task("toy-causal:vocab=16,seq=16")
NONCAUSAL = get_task("toy-classify:vocab=16,seq=16")
SEEDS = [str(a) for a in sample(40, seed=5, task=TASK, max_params=200_000, max_blocks=6)] + \
        [str(a) for a in sample(20, seed=6, task=NONCAUSAL, max_params=200_000, max_blocks=6)]
# The largest admitted nets (256 blocks, 22M parameters on the meta device) take 1-3.3 s of CPU here, more under
# Hypothesis's tracing; a blow-up would take far longer.
LIMIT_S = 8.0
REAL_BUILD_PARAMS = 20_000_000  # larger models are built on the meta device (no memory, same modules)
# Pieces a careless or hostile user might type into an architecture.
TOKENS = ["(", ")", ",", " ", "net(", "repeat(", "block(", "parallel(", "compose(", "seq(", "branch(", "split(",
          "attend(", "permute(", "linear(", "conv(", "act(", "norm(", "shift(", "id", "pre:rms", "post:ln",
          "sandwich:rms", "mixln:ln", "none", "add", "mul", "cat", "sum", "softmax", "gelu", "=", ":", "0", "1", "-1",
          "2", "64", "0.5", "1e9", "1e999", "-0.0", "nan", "inf", "99999999999", "9" * 40, "true", "x", "é", "\n",
          "\\", "'", "{", "}", "__import__", "heads=", "expand=", "chunk=", "kernel=", "d_state=",
          *sorted(spec.name for spec in list_ops())]
WHOLE_INPUT = ("unexpected end of input", "architecture is nested too deeply", "architecture text is too long",
               "the net has ", "the model would have ")


OP_NAMES = sorted(spec.name for spec in list_ops())


def _matching(text: str, start: int) -> int:
    """Index just past the ')' closing the '(' at or after `start` (or the end of the text)."""
    depth = 0
    for i in range(text.index("(", start), len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    return len(text)


@st.composite
def mutated(draw) -> tuple[str, str]:
    """(text, which task): a sampled architecture with 1-3 edits. Structural edits (another primitive,
    another number, a block duplicated or repeated, an argument dropped) keep it parseable and probe
    check and build; character edits (delete, insert, duplicate a span) probe the parser."""
    index = draw(st.integers(0, len(SEEDS) - 1))
    text = SEEDS[index]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["rename", "rename", "number", "number", "block", "repeat", "drop",
                                     "delete", "insert", "span"]))
        at = draw(st.integers(0, len(text)))
        if kind == "rename":
            calls = [m for m in re.finditer(r"([a-z_0-9]+)\(", text) if m.group(1) in OP_NAMES]
            if calls:
                found = calls[draw(st.integers(0, len(calls) - 1))]
                text = text[:found.start(1)] + draw(st.sampled_from(OP_NAMES)) + text[found.end(1):]
        elif kind == "number":
            numbers = list(re.finditer(r"\d+(\.\d+)?", text))
            if numbers:
                found = numbers[draw(st.integers(0, len(numbers) - 1))]
                new = draw(st.sampled_from(["0", "1", "2", "3", "4", "8", "16", "-2", "48", "96", "128", "256", "257",
                                            "1025", "4097", "8193", "99999999999", "0.25", "2.5", "1e400", "9" * 30]))
                text = text[:found.start()] + new + text[found.end():]
        elif kind in ("block", "repeat"):
            blocks = [m.start() for m in re.finditer(r"block\(", text)]
            if blocks:
                start = blocks[draw(st.integers(0, len(blocks) - 1))]
                end = _matching(text, start)
                block = text[start:end]
                times = draw(st.sampled_from(["2", "3", "256", "257", "5000"]))
                new = f"{block}, {block}" if kind == "block" else f"repeat({times}, {block})"
                text = text[:start] + new + text[end:]
        elif kind == "drop":
            args = list(re.finditer(r",? ?[a-z_]+=[^,()]+", text))
            if args:
                found = args[draw(st.integers(0, len(args) - 1))]
                text = text[:found.start()] + text[found.end():]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        else:
            end = min(len(text), at + draw(st.integers(1, 60)))
            text = text[:end] + text[at:end] + text[end:]
    return text, "causal" if index < 40 else "noncausal"


def says_where(message: str) -> bool:
    return bool(re.search(r"line \d+, column \d+", message)) or message.startswith("in ") or \
        message.startswith(WHOLE_INPUT)


def parse_check_build(text: str, task) -> str:
    """'built', or the ArchError's message; any other exception propagates (a defect)."""
    try:
        report = check(parse(text), task)
        if report.params <= REAL_BUILD_PARAMS:
            build(text, task)
        else:
            with torch.device("meta"):
                build(text, task)
        return "built"
    except ArchError as err:
        return str(err)


def _timed(text: str, task) -> tuple[str, float]:
    started = time.process_time()  # CPU time: a busy shared machine stretches the wall clock, not this
    outcome = parse_check_build(text, task)
    return outcome, time.process_time() - started


def _property(case: tuple[str, str]) -> None:
    text, mode = case
    task = TASK if mode == "causal" else NONCAUSAL
    outcome, took = _timed(text, task)
    if took >= LIMIT_S:  # once more: the first use of an op can pay torch's one-time set-up
        outcome, took = _timed(text, task)
    assert took < LIMIT_S, f"{took:.2f} s of CPU for {text!r}, twice"
    if outcome != "built":
        assert "\n" not in outcome, f"a multi-line error for {text!r}: {outcome!r}"
        assert not outcome.startswith("bad architecture:"), f"an unexpected error inside the parser: {outcome}"
        assert says_where(outcome), f"no position in {outcome!r} for {text!r}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(case=mutated())
def test_mutated_strings_build_or_fail_with_a_position(case):
    _property(case)


@pytest.mark.stress
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated())
def test_ten_thousand_mutated_strings(case):
    _property(case)


@pytest.mark.parametrize("text", [
    "net(64, repeat(99999999999, block(pre:rms, glu())))",
    "net(64, repeat(0, block(pre:rms, glu())))",
    "net(64, block(pre:rms, glu(expand=99999999999999999999999999999)))",
    "net(64, block(pre:rms, compose(linear(1e400))))",
    "net(64, block(pre:rms, compose(conv(1e9))))",
    "net(64, block(pre:rms, compose(shift(" + "9" * 5000 + "))))",
    "net(64, " + "block(pre:rms, glu()), " * 5000 + "block(pre:rms, glu()))",
    "net(" * 5000,
])
def test_hostile_strings_fail_fast_with_a_position(text):
    started = time.process_time()
    outcome = parse_check_build(text, TASK)
    assert outcome != "built" and says_where(outcome) and "\n" not in outcome, outcome
    assert time.process_time() - started < 1.0
