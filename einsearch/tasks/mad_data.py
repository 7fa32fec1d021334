"""Generators of the MAD synthetic tasks (Poli et al. 2024), one sequence at a time.

Each returns (tokens, scored): `tokens` has seq + 1 ids (inputs are tokens[:-1], next-token
targets tokens[1:]); `scored[i]` marks the input positions whose next token is a recall target
(the only positions the metric counts; training uses every next token). Token layouts:
- recall: keys [0, K), values [K, 2K) with K = (vocab - noise_vocab) // 2; noise tokens after them.
- selective copy: 0 blank, 1 separator, content tokens [2, vocab).
"""
from __future__ import annotations

import functools
import random


def recall(rng: random.Random, vocab: int, seq: int, noise_vocab: int = 0, frac_noise: float = 0.0,
           fuzzy: bool = False, kv_map: dict | None = None) -> tuple[list[int], list[bool]]:
    """Key-value pairs from one map; every value whose key occurred earlier is scored.

    fuzzy: keys and values are 1..3 tokens long (no key a prefix of another).
    noise: with probability `frac_noise` a slot holds two noise tokens instead of a pair.
    kv_map: a fixed map shared by all sequences (memorization); then every value is scored."""
    half = (vocab - noise_vocab) // 2
    keys_vocab, values_vocab = range(half), range(half, 2 * half)
    noise_vocab_ids = range(2 * half, 2 * half + noise_vocab)
    if kv_map is None:
        kv_map = _fuzzy_map(rng, keys_vocab, values_vocab) if fuzzy else {
            (k,): (rng.choice(values_vocab),) for k in keys_vocab}
    keys = list(kv_map)
    tokens: list[int] = []
    scored: list[bool] = []
    seen: set = set()
    while len(tokens) < seq + 1:
        if noise_vocab and rng.random() < frac_noise:
            noise = [rng.choice(noise_vocab_ids) for _ in range(2)]
            tokens += noise
            scored += [False] * len(noise)
            continue
        key = rng.choice(keys)
        value = kv_map[key]
        recalled = key in seen
        seen.add(key)
        scored += [False] * len(key) + [recalled] * len(value)  # per token: is it a recall target
        tokens += list(key) + list(value)
    return tokens[: seq + 1], _shift(scored, seq)


def memorization(rng: random.Random, vocab: int, seq: int, kv_map: dict) -> tuple[list[int], list[bool]]:
    """Pairs from one fixed map (the same for every sequence): every value is scored."""
    keys = list(kv_map)
    tokens: list[int] = []
    scored: list[bool] = []
    while len(tokens) < seq + 1:
        key = rng.choice(keys)
        tokens += [key, kv_map[key]]
        scored += [False, True]
    return tokens[: seq + 1], _shift(scored, seq)


@functools.lru_cache(maxsize=8)
def fixed_map(vocab: int, seed: int = 1234) -> dict[int, int]:
    """The memorization task's one key -> value map, independent of the training seed."""
    rng = random.Random(seed)
    half = vocab // 2
    return {k: rng.randrange(half, vocab) for k in range(half)}


def selective_copy(rng: random.Random, vocab: int, seq: int, copy: int) -> tuple[list[int], list[bool]]:
    """`copy` content tokens scattered among blanks, a separator, then the content tokens in order."""
    region = seq - copy  # seq + 1 tokens = region + separator + copies
    places = sorted(rng.sample(range(region), copy))
    content = [rng.randrange(2, vocab) for _ in range(copy)]
    tokens = [0] * region
    for place, token in zip(places, content):
        tokens[place] = token
    tokens += [1] + content
    return tokens, _shift([False] * (region + 1) + [True] * copy, seq)


def compression(rng: random.Random, vocab: int, seq: int) -> list[int]:
    """A random sequence to be reconstructed from the model's last position."""
    return [rng.randrange(vocab) for _ in range(seq)]


def _shift(scored_tokens: list[bool], seq: int) -> list[bool]:
    # scored_tokens[j] marks token j as a target; input position i predicts token i + 1.
    return scored_tokens[1: seq + 1]


def _fuzzy_map(rng: random.Random, keys_vocab: range, values_vocab: range) -> dict[tuple, tuple]:
    """Keys and values of 1..3 tokens; no key is a prefix of another, so a key's end is unambiguous."""
    out: dict[tuple, tuple] = {}
    for _ in range(len(keys_vocab)):
        key = tuple(rng.choice(keys_vocab) for _ in range(rng.randint(1, 3)))
        if any(k[: len(key)] == key or key[: len(k)] == k for k in out):
            continue
        out[key] = tuple(rng.choice(values_vocab) for _ in range(rng.randint(1, 3)))
    return out
