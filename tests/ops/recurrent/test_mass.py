import math

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from tests.ops.conv.test_checks import assert_causal, assert_matches_reference, linear, ref_depthwise
from tests.ops.conv.test_convmixer import layer_norm

SHAPES = [(2, 1), (2, 6), (1, 19), (1, 40)]


def rotate(x):
    """Rotary embedding written out: channel pair (i, i + d/2) at position t turns by t / 10000^(2i/d)."""
    length, d = x.shape[-2], x.shape[-1]
    out = torch.empty_like(x)
    for t in range(length):
        for i in range(d // 2):
            angle = t / 10000 ** (2 * i / d)
            a, b = x[..., t, i], x[..., t, i + d // 2]
            out[..., t, i] = a * math.cos(angle) - b * math.sin(angle)
            out[..., t, i + d // 2] = a * math.sin(angle) + b * math.cos(angle)
    return out


def window_mask(length, window, dilation, causal):
    """Dense (L, L) mask: key s is in query t's window."""
    mask = torch.zeros(length, length, dtype=torch.bool)
    for t in range(length):
        for j in range(window):
            s = t - dilation * (window - 1 - j) if causal else t + dilation * (j - (window - 1) // 2)
            if 0 <= s < length:
                mask[t, s] = True
    return mask


def dense_attention(q, k, mask):
    logits = (q @ k.transpose(-1, -2)).masked_fill(~mask, float("-inf"))
    return logits.softmax(-1)  # (B, h, L, L)


def reference(module, x):
    """Dense masked attention maps, a step loop for the SSM states, the maps applied to the
    states as full L x L matrix products, then the head fusion and read-out written out."""
    b, length, dim = x.shape
    heads, hd, n, w = module.heads, module.head_dim, module.d_state, module.window
    half = heads // 2
    qkv = linear(x, module.qkv)
    q, k, v = (qkv[..., i * dim:(i + 1) * dim].reshape(b, length, heads, hd).transpose(1, 2) for i in range(3))
    q, k = rotate(q) / math.sqrt(hd), rotate(k)
    a1 = dense_attention(q[:, :half], k[:, :half], window_mask(length, w, 1, module.causal))
    a2 = dense_attention(q[:, half:], k[:, half:], window_mask(length, w, w, module.causal))
    v1 = a1 @ v[:, :half]
    v2 = a2 @ (v1 + v[:, half:])
    attended = torch.cat([v1, v2], 1).transpose(1, 2).reshape(b, length, dim)
    lepe = ref_depthwise(v.transpose(1, 2).reshape(b, length, dim), module.lepe.weight[:, 0], module.lepe.bias,
                         module.causal)
    u = F.silu(ref_depthwise(attended, module.conv.weight[:, 0], module.conv.bias, module.causal))
    proj = u @ module.x_proj.weight.T
    dt = F.softplus(linear(proj[..., :module.dt_rank], module.dt_proj))
    B, C = proj[..., module.dt_rank:module.dt_rank + n], proj[..., module.dt_rank + n:]
    A = -torch.exp(module.A_log)  # (D, N)
    h, states = torch.zeros(b, dim, n, dtype=x.dtype), []
    for t in range(length):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        states.append(h)
    states = torch.stack(states, 1)  # (B, L, D, N)
    per_head = states.reshape(b, length, heads, hd * n).transpose(1, 2)  # (B, H, L, hd N)
    mixed = torch.cat([a1 @ per_head[:, :half], a2 @ per_head[:, half:]], 1)
    fused = torch.einsum("ij,bjlc->bilc", module.state_fusion.weight, mixed) \
        + module.state_fusion.bias[None, :, None, None]
    fused = fused.transpose(1, 2).reshape(b, length, dim, n)
    y = (fused * C[:, :, None, :]).sum(-1) + module.D * u
    y = (layer_norm(y, module.norm) + lepe) * F.silu(linear(x, module.gate))
    return linear(layer_norm(y, module.out_norm), module.proj)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("heads,window,d_state", [(2, 4, 1), (2, 8, 4), (4, 4, 4)])
def test_matches_step_loop(causal, heads, window, d_state):
    torch.manual_seed(0)
    module = create("mass", 8, causal=causal, heads=heads, window=window, d_state=d_state)
    assert_matches_reference(module, reference, 8, SHAPES)


@pytest.mark.parametrize("window", [4, 8])
def test_causal(window):
    torch.manual_seed(0)
    module = create("mass", 8, causal=True, window=window)
    for t in (0, 5, 9):
        assert_causal(module, 8, length=23, t=t)


def test_attention_reach():
    """Causal, window 4: the local heads see t-3..t, the dilated heads t-12, t-8, t-4, t."""
    torch.manual_seed(0)
    module = create("mass", 8, causal=True, heads=2, window=4).double()
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    (a1, idx1, ok1), (a2, idx2, ok2), _ = module.attention_maps(x)
    assert idx1[15].tolist() == [12, 13, 14, 15] and idx2[15].tolist() == [3, 7, 11, 15]
    assert not ok2[5, :2].any() and ok2[5, 2:].all()
    assert torch.all(a2[..., 5, :2] == 0)
    assert torch.allclose(a1.sum(-1), torch.ones_like(a1[..., 0]))


def test_states_reach_past_the_windows_through_the_scan():
    """The SSM carries information beyond the attention span: with window 4 (dilated span 13),
    an input 30 steps back still moves the output, and only through the scan."""
    torch.manual_seed(0)
    module = create("mass", 8, causal=True, heads=2, window=4).double()
    with torch.no_grad():
        module.A_log.fill_(-6.0)  # slow decay
    x = torch.randn(1, 40, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 2] += 1.0
    assert not torch.allclose(module(x)[:, 39], module(x2)[:, 39])


def test_rejects_odd_head_width():
    with pytest.raises(ValueError):
        create("mass", 12, causal=True, heads=4)
