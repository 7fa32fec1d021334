"""torch.export of exported models (a subset; every primitive was checked once by hand, see the
report of issue 6). MoE's routing sizes depend on the data (`int(padded.sum())`, `.tolist()`), which
torch.export cannot trace symbolically; for it torch.jit.trace is used, which fixes the routing's
block counts to those of the example input."""
from __future__ import annotations

import pytest
import torch

from einsearch import parse
from einsearch.evaluators.task import get_task
from einsearch.export import export_source
from tests.export.cases import CAUSAL, NONCAUSAL, STRUCTURE

NEEDS_TRACE = {"moe"}  # primitives with data-dependent shapes (see the module docstring)
SUBSET = [
    ("net(32, block(pre:rms, attention()), block(pre:rms, glu()))", CAUSAL),
    ("net(32, block(pre:rms, h3()), block(pre:ln, deltanet()))", CAUSAL),
    ("net(32, block(pre:rms, mamba()), block(pre:rms, hyena()))", NONCAUSAL),
    ("net(32, block(pre:rms, mlp_mixer()), block(pre:rms, moe()))", NONCAUSAL),
    STRUCTURE[3], STRUCTURE[6], STRUCTURE[9],
]


def _load(arch: str, task: str) -> torch.nn.Module:
    namespace: dict = {"__name__": "exported"}
    exec(compile(export_source(arch, task), "exported.py", "exec"), namespace)
    return namespace["build"]().eval()


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:`torch.jit.trace:DeprecationWarning")
@pytest.mark.parametrize("arch,task", SUBSET)
def test_exported_model_exports_or_traces(arch, task):
    torch.manual_seed(0)
    model = _load(arch, task)
    x = get_task(task).example_input(2)
    with torch.no_grad():
        expected = model(x)
        try:
            graph = torch.export.export(model, (x,)).module()
        except Exception:
            if not NEEDS_TRACE & set(parse(arch).ops()):
                raise
            graph = torch.jit.trace(model, (x,), check_trace=False)
        assert (graph(x) - expected).abs().max().item() <= 1e-6
