"""The causality guarantee: for sampled causal architectures, output t never depends on input > t."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from einsearch import build, sample
from einsearch.tasks import get_task
from einsearch.ops import get_op

TASK = get_task("toy-causal:seq=12")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(0, 10))
def test_gradient_of_output_t_wrt_later_inputs_is_zero(seed, t):
    (arch,) = sample(1, seed=seed, task=TASK, max_params=300_000)
    torch.manual_seed(seed % 1000)
    model = build(arch, TASK).double().train()
    x = model.stem(TASK.example_input(2)).detach().requires_grad_(True)  # (B, L, D)
    out = model.head(model.backbone(x))  # (B, L, V); backbone wires the cross-layer context
    out[:, t].sum().backward()
    later = x.grad[:, t + 1:]
    if all(get_op(name).exact_causal for name in arch.ops()):
        assert torch.count_nonzero(later) == 0, str(arch)
    else:  # FFT convolutions: zero in exact arithmetic, float64 rounding only
        assert later.abs().max() <= 1e-12 * x.grad[:, : t + 1].abs().max().clamp_min(1.0), str(arch)
