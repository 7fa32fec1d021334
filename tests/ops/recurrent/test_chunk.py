"""The chunked scans of einsearch/ops/recurrent/chunk.py against plain step-by-step loops (float64)."""
from __future__ import annotations

import pytest
import torch

from einsearch.ops.recurrent.chunk import MIN_LOG_DECAY, delta_scan, gated_scan, scalar_scan
from tests.ops.recurrent.test_checks import rel_err

B, H, DK, DV = 2, 2, 4, 3


def loop(q, k, v, alpha, beta=None, state=None):
    """S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T (beta None: 1 and no delta term).

    alpha (B, H, L, dk) broadcastable per key channel."""
    s = torch.zeros(B, H, DK, DV, dtype=q.dtype) if state is None else state
    outs = []
    for t in range(q.shape[2]):
        q_t, k_t, v_t, a_t = q[:, :, t], k[:, :, t], v[:, :, t], alpha[:, :, t]
        if beta is None:
            s = a_t[..., None] * s + k_t[..., None] * v_t[..., None, :]
        else:
            b_t = beta[:, :, t, None, None]
            removed = k_t[..., None] * (k_t[..., None, :] @ s)  # k k^T S
            s = a_t[..., None] * (s - b_t * removed) + b_t * k_t[..., None] * v_t[..., None, :]
        outs.append((s * q_t[..., None]).sum(-2))
    return torch.stack(outs, 2), s


def inputs(length, seed=0, strong_decay=False):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, H, length, DK, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, length, DV, generator=gen, dtype=torch.float64)
    low = MIN_LOG_DECAY if strong_decay else -0.5
    log_a = torch.empty(B, H, length, DK, dtype=torch.float64).uniform_(low, 0, generator=gen)
    beta = torch.rand(B, H, length, generator=gen, dtype=torch.float64)
    s0 = torch.randn(B, H, DK, DV, generator=gen, dtype=torch.float64)
    tensors = [q, k, v, log_a, beta, s0]
    for t in tensors:
        t.requires_grad_(True)
    return tensors


def assert_close_with_grads(fast, slow, wrt):
    for a, b in zip(fast, slow):
        assert rel_err(a, b) < 1e-9
    gen = torch.Generator().manual_seed(1)
    ups = [torch.randn(a.shape, generator=gen, dtype=torch.float64) for a in fast]
    g_fast = torch.autograd.grad(sum((a * u).sum() for a, u in zip(fast, ups)), wrt)
    g_slow = torch.autograd.grad(sum((a * u).sum() for a, u in zip(slow, ups)), wrt)
    for a, b in zip(g_fast, g_slow):
        assert rel_err(a, b) < 1e-9


LENGTHS_CHUNKS = [(1, 16), (7, 16), (33, 16), (50, 32), (64, 64), (97, 32)]


@pytest.mark.parametrize("length,chunk", LENGTHS_CHUNKS)
def test_scalar_scan_no_decay(length, chunk):
    q, k, v, _, _, s0 = inputs(length)
    ones = torch.ones(B, H, length, DK, dtype=torch.float64)
    assert_close_with_grads(scalar_scan(q, k, v, None, chunk, s0), loop(q, k, v, ones, state=s0), [q, k, v, s0])


@pytest.mark.parametrize("length,chunk", LENGTHS_CHUNKS)
def test_scalar_scan_decay(length, chunk):
    q, k, v, log_a, _, s0 = inputs(length)
    log_g = log_a[..., 0]  # one decay per head and step
    slow = loop(q, k, v, log_g.exp()[..., None].expand(-1, -1, -1, DK), state=s0)
    assert_close_with_grads(scalar_scan(q, k, v, log_g, chunk, s0), slow, [q, k, v, log_a, s0])


@pytest.mark.parametrize("length,chunk", LENGTHS_CHUNKS)
@pytest.mark.parametrize("strong", [False, True])
def test_gated_scan(length, chunk, strong):
    q, k, v, log_a, _, s0 = inputs(length, strong_decay=strong)
    slow = loop(q, k, v, log_a.exp(), state=s0)
    assert_close_with_grads(gated_scan(q, k, v, log_a, chunk, s0), slow, [q, k, v, log_a, s0])


@pytest.mark.parametrize("length,chunk", LENGTHS_CHUNKS)
@pytest.mark.parametrize("gated", [False, True])
def test_delta_scan(length, chunk, gated):
    q, k, v, log_a, beta, s0 = inputs(length)
    k = torch.nn.functional.normalize(k, dim=-1)  # the delta rule is run with unit keys
    log_g = log_a[..., 0] if gated else None
    alpha = log_g.exp()[..., None] if gated else torch.ones(B, H, length, 1, dtype=torch.float64)
    alpha = alpha.expand(-1, -1, -1, DK)
    slow = loop(q, k, v, alpha, beta=beta, state=s0)
    wrt = [q, k, v, beta, s0] + ([log_a] if gated else [])
    assert_close_with_grads(delta_scan(q, k, v, beta, log_g, chunk, s0), slow, wrt)


def test_gated_scan_float32_strong_decay_is_finite():
    """The bounded sub-block factorisation keeps float32 finite at the strongest allowed decay."""
    q, k, v, _, _, _ = inputs(128)
    log_a = torch.full((B, H, 128, DK), MIN_LOG_DECAY, dtype=torch.float32)
    o, s = gated_scan(q.float().detach(), k.float().detach(), v.float().detach(), log_a, 64)
    slow, s_slow = loop(q.detach(), k.detach(), v.detach(), log_a.double().exp())
    assert torch.isfinite(o).all()
    assert rel_err(o.double(), slow) < 1e-5


def test_gla_with_unit_gates_is_linear_attention():
    """GLA's scan with alpha = 1 equals the no-decay (linear attention) scan and the plain quadratic form."""
    q, k, v, _, _, _ = inputs(45)
    zeros = torch.zeros(B, H, 45, DK, dtype=torch.float64)
    o_gla, s_gla = gated_scan(q, k, v, zeros, 16)
    o_lin, s_lin = scalar_scan(q, k, v, None, 32)
    quadratic = ((q @ k.transpose(-1, -2)).tril()) @ v
    assert rel_err(o_gla, o_lin) < 1e-12 and rel_err(s_gla, s_lin) < 1e-12
    assert rel_err(o_lin, quadratic) < 1e-12
