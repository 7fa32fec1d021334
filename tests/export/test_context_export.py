"""Exported models wire the cross-layer context like `einsearch.build`: same outputs for nets whose
primitives read the stem output or the previous attention matrix (where the fallback would differ)."""
from __future__ import annotations

import pytest
import torch

from einsearch import build
from einsearch.tasks import get_task
from einsearch.export import export_source
from tests.export.cases import CAUSAL, NONCAUSAL

CASES = [
    ("net(32, block(pre:rms, attention(heads=2, kv_heads=2)), block(pre:rms, attention_moe(experts=4)))", CAUSAL),
    ("net(32, block(pre:rms, l2_attention(heads=2)), block(pre:ln, glu()), block(pre:rms, attention_moe(top_k=1)))",
     NONCAUSAL),
    ("net(32, block(pre:rms, glu()), block(pre:rms, embed_qk_attention(heads=2)), "
     "block(pre:rms, fixed_mix_attention()), block(pre:rms, attention_moe(experts=4)))", CAUSAL),
    ("net(32, block(pre:rms, position_attention(heads=2)), block(pre:rms, similarity_moe(experts=4)))", NONCAUSAL),
]


def _exported(arch: str, task: str) -> torch.nn.Module:
    namespace: dict = {"__name__": "exported"}
    exec(compile(export_source(arch, task), "exported.py", "exec"), namespace)
    return namespace["build"]()


def _without_context(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    h = model.stem(tokens)
    for block in model.blocks:
        h = block(h)
    return model.head(h)


@pytest.mark.parametrize("arch,task", CASES)
def test_exported_model_matches_build_with_context(arch, task):
    torch.manual_seed(0)
    reference = build(arch, task).eval()
    exported = _exported(arch, task).eval()
    assert type(exported).__module__ == "exported"
    exported.load_state_dict(reference.state_dict())
    tokens = get_task(task).example_input(3)
    with torch.no_grad():
        expected, got = reference(tokens), exported(tokens)
        fallback = _without_context(reference, tokens)
    assert (got - expected).abs().max().item() <= 1e-6
    if "similarity_moe" not in arch:  # the others read the context: without it the output differs
        assert (fallback - expected).abs().max().item() > 1e-4


def test_exported_embedding_context_passes_torch_export():
    arch = "net(32, block(pre:rms, attention(heads=2, kv_heads=2)), block(pre:rms, embed_qk_attention(heads=2)))"
    model = _exported(arch, CAUSAL).eval()
    x = get_task(CAUSAL).example_input(2)
    with torch.no_grad():
        expected = model(x)
        graph = torch.export.export(model, (x,)).module()
        assert (graph(x) - expected).abs().max().item() <= 1e-6


@pytest.mark.parametrize("arch,task", CASES)
def test_exported_routing_context_passes_torch_export(arch, task):
    """The MoEs that route over a token graph export (fixed-shape dispatch), with the forward hook
    that records the previous attention matrix for attention_moe."""
    model = _exported(arch, task).eval()
    x = get_task(task).example_input(2)
    with torch.no_grad():
        expected = model(x)
        graph = torch.export.export(model, (x,)).module()
        assert (graph(x) - expected).abs().max().item() <= 1e-6
