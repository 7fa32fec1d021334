"""torch.export of exported models: every primitive (defaults and last choices, each mode it
supports) and every grammar structure. No torch.jit.trace fallback: the routed MoEs dispatch with
fixed shapes under torch.export (see MoE.dispatch). The exported graph is checked on the example
input and on a second input, whose routing and attention patterns differ from the example's."""
from __future__ import annotations

import pytest
import torch

from einsearch.tasks import get_task
from tests.export.cases import CAUSAL, NONCAUSAL, STRUCTURE, primitive_cases

SUBSET = [
    ("net(32, block(pre:rms, attention()), block(pre:rms, glu()))", CAUSAL),
    ("net(32, block(pre:rms, h3()), block(pre:ln, deltanet()))", CAUSAL),
    ("net(32, block(pre:rms, mamba()), block(pre:rms, hyena()))", NONCAUSAL),
    ("net(32, block(pre:rms, mlp_mixer()), block(pre:rms, moe()))", NONCAUSAL),
    ("net(32, block(pre:rms, attention(heads=2, kv_heads=2)), block(pre:rms, attention_moe(experts=4)), "
     "block(pre:rms, similarity_moe(top_k=1)), block(pre:rms, bam()))", CAUSAL),
]


def _load(arch: str, task: str) -> torch.nn.Module:
    from einsearch.export import export_source

    namespace: dict = {"__name__": "exported"}
    exec(compile(export_source(arch, task), "exported.py", "exec"), namespace)
    return namespace["build"]().eval()


@pytest.mark.parametrize("arch,task", SUBSET + STRUCTURE + primitive_cases())
def test_exported_model_passes_torch_export(arch, task):
    torch.manual_seed(0)
    model = _load(arch, task)
    spec = get_task(task)
    x = spec.example_input(2)
    torch.manual_seed(1)
    other = spec.example_input(2)
    with torch.no_grad():
        graph = torch.export.export(model, (x,)).module()
        for inputs in (x, other):
            assert (graph(inputs) - model(inputs)).abs().max().item() <= 1e-6
