"""Architectures the export tests share: one per registered primitive (defaults, and every
hyperparameter at its last choice) in each mode it supports, plus sampled ones."""
from __future__ import annotations

from einsearch import ArchError, check, sample
from einsearch.grammar.tree import format_value
from einsearch.ops import list_ops

CAUSAL = "toy-causal:vocab=16,seq=16"
NONCAUSAL = "toy-classify:vocab=16,seq=16"
DIMS = (32, 64, 48, 96)


def tasks_for(spec) -> list[str]:
    return ([CAUSAL] if spec.causal else []) + ([NONCAUSAL] if spec.noncausal else [])


def first_valid(text_for_dim, task: str) -> str | None:
    for dim in DIMS:
        text = text_for_dim(dim)
        try:
            check(text, task)
            return text
        except ArchError:
            continue
    return None


def primitive_cases() -> list[tuple[str, str]]:
    """(arch, task) for every primitive and mode: defaults (must exist) and last choices (when valid)."""
    cases = []
    for spec in list_ops():
        last = ", ".join(f"{k}={format_value(v[-1])}" for k, v in spec.hparams.items())
        for task in tasks_for(spec):
            default = first_valid(lambda d: f"net({d}, block(pre:rms, {spec.name}()))", task)
            if default is None:
                raise AssertionError(f"no width in {DIMS} fits {spec.name} with its defaults on {task}")
            cases.append((default, task))
            other = first_valid(lambda d: f"net({d}, block(sandwich:ln, {spec.name}({last})))", task)
            if other is not None:
                cases.append((other, task))
    return cases


def sampled_cases(n: int, seed: int) -> list[tuple[str, str]]:
    return [(str(a), task) for task in (CAUSAL, NONCAUSAL)
            for a in sample(n, seed=seed, task=task, max_params=60_000)]


# Every structure and fundamental operation of the grammar, in both modes where it is allowed.
STRUCTURE = [
    ("net(32, repeat(4, block(mixln:rms, glu())), block(none, mlp()), block(post:ln, mlp()))", CAUSAL),
    ("net(32, block(pre:rms, parallel(short_conv(), mlp(), glu())), block(sandwich:rms, mlp()))", CAUSAL),
    ("net(32, block(pre:rms, compose(seq(linear(2), act(gelu), norm(rms), linear(1)))))", CAUSAL),
    ("net(32, block(pre:rms, compose(branch(mul, seq(conv(3), act(silu)), shift(2)))))", CAUSAL),
    ("net(32, block(pre:ln, compose(split(cat, conv(4), seq(norm(ln), act(tanh))))))", NONCAUSAL),
    ("net(32, block(pre:ln, compose(branch(add, id, seq(linear(1), act(sigmoid), act(relu))))))", NONCAUSAL),
    ("net(32, block(pre:rms, compose(attend(softmax, linear(0.5), linear(0.5), linear(1)))))", CAUSAL),
    ("net(32, block(pre:rms, compose(attend(sigmoid, linear(0.25), linear(0.25), id))))", NONCAUSAL),
    ("net(32, block(pre:rms, compose(attend(none, linear(0.5), linear(0.5), conv(3)))))", CAUSAL),
    ("net(32, block(pre:rms, compose(permute(seq(linear(2), act(softmax), linear(1))))))", NONCAUSAL),
    ("net(32, block(pre:rms, compose(seq(conv(5), shift(1)))))", NONCAUSAL),
    # helpers with the same name in different modules (merge_heads, _validate, SHORT_KERNEL): renamed
    ("net(32, block(pre:rms, attention()), block(pre:rms, linear_attention()), block(pre:rms, retnet()), "
     "block(pre:rms, hyena()), block(pre:rms, baseconv(kernel=short)))", CAUSAL),
]
