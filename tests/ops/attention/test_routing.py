import math

import pytest
import torch

from einsearch.ops import aux_loss, create
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, heads, linear, rel_err, unheads,
)

DIM = 16


def ref_keys_and_clusters(module, x, centroids):
    """Unit keys (B, H, L, d) and, per token and head, the index of the most similar centroid."""
    q = heads(linear(x, module.q), module.heads)
    k = q / q.norm(dim=-1, keepdim=True)
    batch, n_heads, length, _ = k.shape
    clusters = [[[max(range(centroids.shape[1]), key=lambda c: (k[b, h, i] * centroids[h, c]).sum().item())
                  for i in range(length)] for h in range(n_heads)] for b in range(batch)]
    return q, k, clusters


def ref_output(module, x, centroids):
    q, k, clusters = ref_keys_and_clusters(module, x, centroids)
    v = heads(linear(x, module.v), module.heads)
    batch, n_heads, length, d = q.shape
    out = torch.zeros_like(q)
    for b in range(batch):
        for h in range(n_heads):
            cl = clusters[b][h]
            for i in range(length):
                keys = [j for j in range(length) if cl[j] == cl[i] and (j <= i or not module.causal)]
                logits = torch.stack([(q[b, h, i] * k[b, h, j]).sum() / math.sqrt(d) for j in keys])
                w = torch.exp(logits - logits.max())
                w = w / w.sum()
                row = sum(w[n] * v[b, h, j] for n, j in enumerate(keys))
                out = out.index_put((torch.tensor(b), torch.tensor(h), torch.tensor(i)), row)
    return linear(unheads(out), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,clusters", [(2, 4), (4, 2), (1, 8)])
def test_matches_reference_eval(causal, n_heads, clusters):
    torch.manual_seed(0)
    module = create("routing_attention", DIM, causal=causal, heads=n_heads, clusters=clusters).eval()
    assert_matches_reference(module, lambda m, x: ref_output(m, x, m.centroids), DIM)


@pytest.mark.parametrize("causal", [True, False])
def test_training_step_output_commitment_and_ema(causal):
    """Train mode: output from the centroids before the update, commitment loss (value and gradient)
    and the EMA update, each against plain loops."""
    torch.manual_seed(0)
    module = create("routing_attention", DIM, causal=causal, heads=2, clusters=4).double().train()
    x = torch.randn(2, 9, DIM, dtype=torch.float64)
    before = module.centroids.clone()
    y = module(x)
    assert rel_err(y, ref_output(module, x, before)) < 1e-6
    _, k, clusters = ref_keys_and_clusters(module, x, before)
    batch, n_heads, length, d = k.shape
    commit = sum((k[b, h, i] - before[h, clusters[b][h][i]]).pow(2).sum()
                 for b in range(batch) for h in range(n_heads) for i in range(length))
    commit = 1e-4 * commit / (batch * n_heads * length)
    assert rel_err(aux_loss(module), commit) < 1e-10
    weight = module.q.weight
    g, = torch.autograd.grad(module.aux_loss, weight)
    g_ref, = torch.autograd.grad(commit, weight)
    assert rel_err(g, g_ref) < 1e-8
    expected = before.clone()
    for h in range(n_heads):
        for c in range(before.shape[1]):
            members = [k[b, h, i] for b in range(batch) for i in range(length) if clusters[b][h][i] == c]
            if members:
                moved = 0.999 * before[h, c] + 0.001 * sum(members) / len(members)
                expected[h, c] = moved / moved.norm()
    assert rel_err(module.centroids, expected) < 1e-12
    assert not torch.equal(module.centroids, before)


@pytest.mark.parametrize("n_heads,clusters", [(2, 4), (1, 2)])
def test_causal_and_step(n_heads, clusters):
    torch.manual_seed(0)
    module = create("routing_attention", DIM, causal=True, heads=n_heads, clusters=clusters)
    assert_causal(module, DIM)  # train mode, centroids updated: each input runs on a fresh copy
    assert_step_matches_forward(module, DIM)


def test_eval_mode_has_no_aux_loss_and_keeps_centroids():
    torch.manual_seed(0)
    module = create("routing_attention", DIM, causal=True).eval()
    before = module.centroids.clone()
    module(torch.randn(1, 5, DIM))
    assert module.aux_loss is None and torch.equal(module.centroids, before)
