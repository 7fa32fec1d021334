import math

import pytest
import torch

from einsearch.ops import create, get_op
from tests.ops.attention.test_checks import assert_matches_reference, linear, rel_err

DIM = 16
SHARES = (1 / 2, 2 / 3, 3 / 4, 4 / 5)


def ref_centred_conv(x, weight):
    """Depthwise conv of width 3, centred, zero outside: y_t = w0 x_{t-1} + w1 x_t + w2 x_{t+1}."""
    length = x.shape[1]
    rows = []
    for t in range(length):
        acc = weight[:, 1] * x[:, t]
        if t > 0:
            acc = acc + weight[:, 0] * x[:, t - 1]
        if t + 1 < length:
            acc = acc + weight[:, 2] * x[:, t + 1]
        rows.append(acc)
    return torch.stack(rows, 1)


def reference(module, x):
    batch, length, dim = x.shape
    h = module.heads
    c = dim // h
    qkv = ref_centred_conv(linear(x, module.qkv), module.qkv_conv.conv.weight[:, 0])
    q, k, v = qkv[..., :dim], qkv[..., dim:2 * dim], qkv[..., 2 * dim:]
    out = torch.zeros_like(x)
    for b in range(batch):
        for head in range(h):
            cols = slice(head * c, (head + 1) * c)
            qh, kh, vh = q[b, :, cols].T, k[b, :, cols].T, v[b, :, cols].T  # (C, L)
            qh = qh / qh.norm(dim=1, keepdim=True).clamp(min=1e-12)
            kh = kh / kh.norm(dim=1, keepdim=True).clamp(min=1e-12)
            for row in range(c):
                logits = [(qh[row] * kh[col]).sum() * module.temperature[head, 0, 0] for col in range(c)]
                mixed = torch.zeros(length, dtype=x.dtype)
                for weight, share in zip(module.branch_weights, SHARES):
                    keep = sorted(range(c), key=lambda col: -logits[col].item())[:int(c * share)]
                    top = max(logits[col] for col in keep)
                    e = {col: torch.exp(logits[col] - top) for col in keep}
                    total = sum(e.values())
                    mixed = mixed + weight * sum(e[col] / total * vh[col] for col in keep)
                out[b, :, head * c + row] = mixed
    return linear(out, module.out)


@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_matches_plain_loops(n_heads):
    torch.manual_seed(0)
    module = create("channel_topk_attention", DIM, causal=False, heads=n_heads)
    with torch.no_grad():  # away from the init so that each branch and temperature matters distinctly
        module.temperature.uniform_(0.5, 3.0)
        module.branch_weights.uniform_(0.1, 0.5)
    # not L = 1: each normalised row is then +-1 and the logits tie, so the top-k pick is arbitrary
    assert_matches_reference(module, reference, DIM, [(2, 2), (2, 6), (1, 11)])


def test_noncausal_only():
    assert get_op("channel_topk_attention").causal is False
    with pytest.raises(ValueError):
        create("channel_topk_attention", DIM, causal=True)


def test_branches_differ_and_mix():
    """The four top-k branches are not all equal (else the mixing would be vacuous)."""
    torch.manual_seed(0)
    module = create("channel_topk_attention", DIM, heads=1).double()
    x = torch.randn(1, 7, DIM, dtype=torch.float64)
    base = module(x)
    with torch.no_grad():
        module.branch_weights.copy_(torch.tensor([0.8, 0.0, 0.0, 0.0]))
    first = module(x)
    with torch.no_grad():
        module.branch_weights.copy_(torch.tensor([0.0, 0.0, 0.0, 0.8]))
    last = module(x)
    assert rel_err(first, last) > 1e-3 and rel_err(base, first) > 1e-3


@pytest.mark.parametrize("dim", [32, 64])
@pytest.mark.parametrize("n_heads", [1, 2, 4, 8])
@pytest.mark.parametrize("length", [1, 5])
def test_every_choice_runs(dim, n_heads, length):
    torch.manual_seed(0)
    module = create("channel_topk_attention", dim, heads=n_heads)
    y = module(torch.randn(2, length, dim))
    y.sum().backward()
    assert y.shape == (2, length, dim) and math.isfinite(y.sum().item())
