"""Dense channel mixers (mlp, glu) against plain references written here."""
from __future__ import annotations

import math

import pytest
import torch

from einsearch.ops import count_params, create, get_op
from einsearch.ops.channel.mlp import GLU, MLP, glu_hidden
from tests.ops.checks import assert_per_token

SHAPES = [(2, 1), (2, 19), (3, 32)]  # (B, L), odd lengths included


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def gelu_ref(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * z * (1 + torch.erf(z / math.sqrt(2)))


ACT_REF = {
    "gelu": gelu_ref,
    "relu": lambda z: torch.where(z > 0, z, torch.zeros_like(z)),
    "silu": lambda z: z / (1 + torch.exp(-z)),
    "swish": lambda z: z / (1 + torch.exp(-z)),
    "sigmoid": lambda z: 1 / (1 + torch.exp(-z)),
}


def mlp_ref(m: MLP, x: torch.Tensor, act: str) -> torch.Tensor:
    h = x @ m.fc_in.weight.T + m.fc_in.bias
    return ACT_REF[act](h) @ m.fc_out.weight.T + m.fc_out.bias


def glu_ref(m: GLU, x: torch.Tensor, act: str) -> torch.Tensor:
    gate = ACT_REF[act](x @ m.w1.weight.T)
    return (gate * (x @ m.w3.weight.T)) @ m.w2.weight.T


def check_against(module: torch.nn.Module, reference, shape: tuple[int, int], dim: int) -> None:
    """Outputs, input grads and all parameter grads match the reference to 1e-6 (float64)."""
    torch.manual_seed(1)
    x = torch.randn(*shape, dim, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(*shape, dim, dtype=torch.float64)
    params = list(module.parameters())
    y = module(x)
    grads = torch.autograd.grad((y * weight).sum(), [x, *params])
    y_ref = reference(x)
    grads_ref = torch.autograd.grad((y_ref * weight).sum(), [x, *params])
    assert y.shape == (*shape, dim)
    assert rel_err(y, y_ref) < 1e-6
    for g, g_ref in zip(grads, grads_ref):
        assert rel_err(g, g_ref) < 1e-6


@pytest.mark.parametrize("act", ["gelu", "relu", "silu"])
@pytest.mark.parametrize("expand", [1, 2, 4])
def test_mlp_matches_reference(act: str, expand: int) -> None:
    torch.manual_seed(0)
    m = create("mlp", 24, causal=True, expand=expand, act=act).double()
    for shape in SHAPES:
        check_against(m, lambda x: mlp_ref(m, x, act), shape, 24)


@pytest.mark.parametrize("act", ["swish", "gelu", "relu", "sigmoid"])
@pytest.mark.parametrize("expand", [1, 2, 4])
def test_glu_matches_reference(act: str, expand: int) -> None:
    torch.manual_seed(0)
    m = create("glu", 24, causal=True, expand=expand, act=act).double()
    for shape in SHAPES:
        check_against(m, lambda x: glu_ref(m, x, act), shape, 24)


def test_glu_hidden_keeps_mlp_parameter_count() -> None:
    # 3 D h with h = round(2/3 e D) equals the MLP's 2 e D^2 (biases aside) up to rounding of h
    for dim in (32, 48, 64, 96):
        for expand in (1, 2, 4):
            glu = count_params("glu", dim, True, {"expand": expand})
            mlp_weights = 2 * expand * dim * dim
            assert abs(glu - mlp_weights) <= 3 * dim // 2
    assert glu_hidden(96, 4) == 256  # LLaMA's 8/3 d


@pytest.mark.parametrize("name", ["mlp", "glu"])
def test_per_token(name: str) -> None:
    """Perturbing position t changes only position t (so causal in every mode)."""
    torch.manual_seed(0)
    m = create(name, 32, causal=True).train()
    assert_per_token(m, torch.randn(2, 19, 32), 7, scale=3.0)


def test_registration_and_errors() -> None:
    assert get_op("mlp").category == "ffn" and get_op("glu").category == "ffn"
    assert get_op("mlp").causal and get_op("mlp").noncausal
    with pytest.raises(ValueError, match="act"):
        MLP(16, act="tanh")
    with pytest.raises(ValueError, match="act"):
        GLU(16, act="tanh")
