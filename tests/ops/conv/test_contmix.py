import math

import pytest
import torch

from einsearch.ops import create
from einsearch.ops.conv.contmix import SMALL_KERNEL
from tests.ops.conv.test_checks import assert_causal, assert_matches_reference, linear

SHAPES = [(2, 1), (2, 3), (1, 10), (1, 17)]


def bins(n, regions):
    """Adaptive average pooling bins written out: bin s covers [floor(s n/S), ceil((s+1) n/S))."""
    return [(math.floor(s * n / regions), math.ceil((s + 1) * n / regions)) for s in range(regions)]


def reference(module, x):
    """Position by position: pool the context (whole sequence, or the prefix x[0..t] when causal)
    into region tokens, project them to keys, affinities per head, kernel logits, softmax, and an
    explicit loop over each kernel's taps (zeros outside the sequence)."""
    b, length, dim = x.shape
    heads, regions = module.heads, module.regions
    c = dim // (2 * heads)
    q_all = linear(x, module.query) * (dim // heads) ** -0.5
    rows = []
    for t in range(length):
        n = t + 1 if module.causal else length
        pooled = torch.stack([x[:, lo:hi].mean(1) for lo, hi in bins(n, regions)], 1)  # (B, S, D)
        keys = linear(pooled, module.key)  # (B, S, D/2)
        out = []
        for half, (kernel, rpb) in enumerate([(SMALL_KERNEL, module.rpb_small), (module.kernel, module.rpb_large)]):
            first = 0 if half == 0 else SMALL_KERNEL
            for g in range(heads):
                q = q_all[:, t, g * c:(g + 1) * c]  # (B, c)
                affinity = torch.stack([(q * keys[:, s, g * c:(g + 1) * c]).sum(-1) for s in range(regions)], -1)
                w = module.weight_proj.weight[first:first + kernel]  # (k, S)
                logits = affinity @ w.T + module.weight_proj.bias[first:first + kernel] + rpb[g]
                weights = torch.softmax(logits, -1)  # (B, k)
                before = kernel - 1 if module.causal else (kernel - 1) // 2
                channels = slice(half * dim // 2 + g * c, half * dim // 2 + (g + 1) * c)
                acc = torch.zeros(b, c, dtype=x.dtype)
                for j in range(kernel):
                    src = t + j - before
                    if 0 <= src < length:
                        acc = acc + weights[:, j:j + 1] * x[:, src, channels]
                out.append(acc)
        rows.append(torch.cat(out, -1))
    return linear(torch.stack(rows, 1), module.proj)


def randomise_biases(module):
    """The relative position biases start at zero; give them values so the test sees their role."""
    with torch.no_grad():
        module.rpb_small.normal_()
        module.rpb_large.normal_()
    return module


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("heads,kernel,regions", [(1, 7, 4), (2, 11, 8), (4, 15, 4)])
def test_matches_reference(causal, heads, kernel, regions):
    torch.manual_seed(0)
    module = randomise_biases(create("contmix", 8, causal=causal, heads=heads, kernel=kernel, regions=regions))
    assert_matches_reference(module, reference, 8, SHAPES)


@pytest.mark.parametrize("regions", [4, 8])
def test_causal(regions):
    torch.manual_seed(0)
    module = randomise_biases(create("contmix", 8, causal=True, regions=regions))
    for t in (0, 3, 6):
        assert_causal(module, 8, length=13, t=t)


def test_causal_last_position_equals_noncausal_context():
    """At the last position the prefix is the whole sequence: the causal kernels there equal the
    non-causal ones (same regions, same weights)."""
    torch.manual_seed(0)
    causal = randomise_biases(create("contmix", 8, causal=True, heads=2, regions=4)).double()
    noncausal = create("contmix", 8, causal=False, heads=2, regions=4).double()
    noncausal.load_state_dict(causal.state_dict())
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    for a, b in zip(causal.kernels(x), noncausal.kernels(x)):
        assert torch.allclose(a[:, -1], b[:, -1], atol=1e-12)
        assert not torch.allclose(a[:, 2], b[:, 2])


def test_kernels_are_distributions_that_depend_on_the_context():
    torch.manual_seed(0)
    module = create("contmix", 8, causal=False, regions=4).double()
    x = torch.randn(1, 16, 8, dtype=torch.float64)
    small, large = module.kernels(x)
    assert torch.allclose(small.sum(-1), torch.ones_like(small[..., 0]))
    assert torch.allclose(large.sum(-1), torch.ones_like(large[..., 0]))
    x2 = x.clone()
    x2[:, -1] += 3.0  # a far-away token changes the regions, so the kernel at position 0 changes
    assert not torch.allclose(module.kernels(x2)[1][:, 0], large[:, 0])


def test_rejects_bad_dim():
    with pytest.raises(ValueError):
        create("contmix", 12, causal=True, heads=4)
