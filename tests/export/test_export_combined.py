"""Export works for every architecture the grammar produces, not only for one primitive at a time: primitives
from different modules share helper and constant names (MIN_LOG_DECAY in GLA's and Mamba's modules), which
only collide when one model combines them. Each exported model, given the built model's weights, gives the
built model's outputs."""
from __future__ import annotations

import pytest
import torch

from einsearch import ArchError, build, check, sample
from einsearch.tasks import get_task
from einsearch.export import export_source
from einsearch.ops import list_ops
from tests.export.cases import CAUSAL, DIMS, NONCAUSAL

TOLERANCE = 1e-6
# The example: GLA (rec_chunk.MIN_LOG_DECAY) with Mamba (ssm_selective_scan.MIN_LOG_DECAY, used
# inside an f-string), with an S4D, a GLU and a BaseConv between them.
GLA_WITH_MAMBA = ("net(192, repeat(2, block(none, gla(heads=4, chunk=64))), block(pre:rms, s4d(d_state=32)), "
                  "repeat(2, block(sandwich:rms, glu(expand=4, act=sigmoid)), block(none, mamba(d_state=4, "
                  "expand=2, chunk=8))), block(post:ln, baseconv(kernel=long)))")


def combined_cases() -> list[tuple[str, str]]:
    """Every primitive at least once per mode, many per net: at each width, all the primitives whose
    defaults fit it and were not placed yet go into one net."""
    cases = []
    for task, allowed in ((CAUSAL, lambda s: s.causal), (NONCAUSAL, lambda s: s.noncausal)):
        left = [spec.name for spec in list_ops() if allowed(spec)]
        for dim in DIMS:
            fits = []
            for name in left:
                try:
                    check(f"net({dim}, block(pre:rms, {name}()))", task)
                    fits.append(name)
                except ArchError:
                    continue
            places = ("pre:rms", "sandwich:ln", "post:rms", "none", "mixln:ln")
            if fits:
                blocks = ", ".join(f"block({places[i % len(places)]}, {name}())" for i, name in enumerate(fits))
                cases.append((f"net({dim}, {blocks})", task))
            left = [name for name in left if name not in fits]
        assert not left, f"no width in {DIMS} fits {left} on {task}"
    return cases


def assert_export_matches_build(arch: str, task: str) -> None:
    source = export_source(arch, task)
    namespace: dict = {"__name__": "exported"}
    exec(compile(source, "exported.py", "exec"), namespace)
    torch.manual_seed(0)
    reference = build(arch, task).eval()
    exported = namespace["build"]().eval()
    exported.load_state_dict(reference.state_dict())  # strict: the same names and shapes
    x = get_task(task).example_input(2)
    with torch.no_grad():
        expected, got = reference(x), exported(x)
    assert got.shape == expected.shape, arch
    assert (got - expected).abs().max().item() <= TOLERANCE, f"{arch} on {task}"


@pytest.fixture(autouse=True)
def _pytorch_forms(monkeypatch):
    # exported code is the PyTorch form; the built model runs it too (not the CPU kernels)
    monkeypatch.setenv("EINSEARCH_CPU_KERNELS", "0")


def test_gla_with_mamba_exports_and_matches():
    assert_export_matches_build(GLA_WITH_MAMBA, "toy-causal:vocab=16,seq=16")


def test_every_primitive_in_combined_nets_matches_build():
    cases = combined_cases()
    covered = {(name, task) for arch, task in cases for name in check(arch, task).ops}
    assert covered == {(s.name, t) for s in list_ops() for t, ok in ((CAUSAL, s.causal), (NONCAUSAL, s.noncausal))
                       if ok}
    for arch, task in cases:
        assert_export_matches_build(arch, task)


def test_sampled_multi_block_architectures_match_build():
    for task in (CAUSAL, NONCAUSAL):
        for arch in sample(4, seed=23, task=task, max_params=80_000, max_blocks=8):
            assert_export_matches_build(str(arch), task)


@pytest.mark.stress
def test_hundreds_of_sampled_architectures_match_build():
    """300 sampled architectures (150 per mode, up to 8 blocks): every primitive appears, each exports."""
    seen: set[str] = set()
    for task in (CAUSAL, NONCAUSAL):
        for arch in sample(150, seed=7, task=task, max_params=80_000, max_blocks=8):
            seen |= set(arch.ops())
            assert_export_matches_build(str(arch), task)
    missing = {spec.name for spec in list_ops()} - seen
    assert not missing, f"primitives never sampled: {sorted(missing)}"
