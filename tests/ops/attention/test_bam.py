import copy

import pytest
import torch

from einsearch.ops import aux_loss, create, get_op
from einsearch.ops.attention.bam import MixtureOfAttentionExperts
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, causal_or_full, heads,
    ref_masked_softmax_attention, ref_rope, ref_softmax, rel_err, unheads,
)

DIM = 16


def ref_gates(module, x):
    """Token by token: softmax router, top-k by sorting; renormalised over the top-k when k > 1,
    the raw probability when k = 1; zero for the others. -> (B, L, E)."""
    rows = []
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            probs = ref_softmax(x[b, t] @ module.router.weight.T)
            top = sorted(range(module.experts), key=lambda e: -probs[e].item())[:module.top_k]
            total = sum(probs[e] for e in top) if module.top_k > 1 else 1.0
            rows.append(torch.stack([probs[e] / total if e in top else probs[e] * 0 for e in range(module.experts)]))
    return torch.stack(rows).view(x.shape[0], x.shape[1], module.experts)


def ref_expert(module, x, e):
    """Expert e alone: its own query/output slices, its own or the shared key/value projection."""
    d = DIM
    wq = module.q.weight[e * d:(e + 1) * d]
    kv = slice(0, d) if module.shared_kv else slice(e * d, (e + 1) * d)
    wk, wv = module.k.weight[kv], module.v.weight[kv]
    wo = module.out.weight[:, e * d:(e + 1) * d]
    q, k, v = (heads(x @ w.T, module.heads) for w in (wq, wk, wv))
    if module.rope:
        q, k = ref_rope(q), ref_rope(k)
    y = ref_masked_softmax_attention(q, k, v, causal_or_full(module.causal))
    return unheads(y) @ wo.T


def reference(module, x):
    """Dense loop over all experts, each weighted by its gate (zero when not selected)."""
    gates = ref_gates(module, x)
    return sum(gates[..., e, None] * ref_expert(module, x, e) for e in range(module.experts))


CASES = [(2, 1, 2, False, True), (4, 2, 1, True, False), (4, 4, 2, False, False), (2, 2, 4, True, True)]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("experts,top_k,n_heads,shared_kv,rope", CASES)
def test_matches_dense_expert_loop(causal, experts, top_k, n_heads, shared_kv, rope):
    torch.manual_seed(0)
    module = MixtureOfAttentionExperts(DIM, causal=causal, experts=experts, top_k=top_k, heads=n_heads,
                                       shared_kv=shared_kv, rope=rope).eval()
    assert_matches_reference(module, reference, DIM)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shared_kv", [False, True])
def test_one_expert_equals_its_attention(causal, shared_kv):
    """The identity: experts=1, top_k=1 is the attention expert alone (gate softmax of one logit = 1)."""
    torch.manual_seed(0)
    bam = MixtureOfAttentionExperts(DIM, causal=causal, experts=1, top_k=1, heads=4, shared_kv=shared_kv).double()
    mha = create("attention", DIM, causal=causal, heads=4, kv_heads=4, rope=True).double()
    with torch.no_grad():
        for mine, theirs in ((bam.q, mha.qkv.q), (bam.k, mha.qkv.k), (bam.v, mha.qkv.v), (bam.out, mha.out)):
            mine.weight.copy_(theirs.weight)
    x = torch.randn(2, 11, DIM, dtype=torch.float64)
    assert rel_err(bam(x), mha(x)) < 1e-12
    assert rel_err(bam.attention_weights(x), mha.attention_weights(x)) < 1e-12


def test_shared_kv_shares_keys_and_values():
    plain = create("bam", 32, experts=4, heads=2, shared_kv=False)
    shared = create("bam", 32, experts=4, heads=2, shared_kv=True)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(plain) - n(shared) == 2 * 3 * 32 * 32  # three fewer key and value projections
    assert shared.k.weight.shape == (32, 32) and plain.k.weight.shape == (4 * 32, 32)


def test_routing_changes_the_output():
    """The gates matter: routing differently (another router) changes the output."""
    torch.manual_seed(0)
    module = create("bam", DIM, causal=True, experts=4, top_k=2, heads=2).double().eval()
    x = torch.randn(2, 9, DIM, dtype=torch.float64)
    other = copy.deepcopy(module)
    with torch.no_grad():
        other.router.weight.mul_(-1)
    assert rel_err(other(x), module(x)) > 1e-3
    gates = module.gates(x)
    assert ((gates > 0).sum(-1) == 2).all() and torch.allclose(gates.sum(-1), torch.ones(2, 9, dtype=torch.float64))


def test_balance_loss():
    torch.manual_seed(0)
    module = create("bam", DIM, causal=True, experts=4, top_k=2, heads=2).double()
    x = torch.randn(2, 7, DIM, dtype=torch.float64)
    module.train()
    module(x)
    probs = ref_softmax(x @ module.router.weight.T).reshape(-1, 4)
    slots = torch.zeros(4, dtype=torch.float64)
    for row in probs:
        for e in sorted(range(4), key=lambda e: -row[e].item())[:2]:
            slots[e] += 1
    expected = 0.01 * 4 * ((slots / slots.sum()) * probs.mean(0)).sum()
    assert rel_err(aux_loss(module), expected) < 1e-12
    assert copy.deepcopy(module).aux_loss is None
    module.eval()
    module(x)
    assert module.aux_loss is None


@pytest.mark.parametrize("causal", [True, False])
def test_attention_weights_are_distributions(causal):
    torch.manual_seed(0)
    module = create("bam", 32, causal=causal, experts=4, top_k=2, heads=2).double()
    w = module.attention_weights(torch.randn(2, 9, 32, dtype=torch.float64))
    assert w.shape == (2, 2, 9, 9)
    assert torch.allclose(w.sum(-1), torch.ones_like(w[..., 0]))
    assert (w.triu(1) == 0).all() == causal


@pytest.mark.parametrize("experts,top_k,n_heads,shared_kv,rope", CASES)
def test_causal_and_step(experts, top_k, n_heads, shared_kv, rope):
    torch.manual_seed(0)
    module = MixtureOfAttentionExperts(DIM, causal=True, experts=experts, top_k=top_k, heads=n_heads,
                                       shared_kv=shared_kv, rope=rope)
    assert_causal(module, DIM)
    assert_step_matches_forward(module, DIM)


def test_registration():
    spec = get_op("bam")
    hp = spec.resolve({"experts": 4, "top_k": 2, "heads": 2})
    assert spec.state(64, 100, hp) == 2 * 100 * 64 * 4
    assert spec.state(64, 100, {**hp, "shared_kv": True}) == 2 * 100 * 64
    assert spec.check_dim(64, {**hp, "experts": 2, "top_k": 4}) is not None
    with pytest.raises(ValueError, match="top_k"):
        create("bam", 64, experts=2, top_k=4)
    with pytest.raises(ValueError, match="top_k"):
        MixtureOfAttentionExperts(64, experts=2, top_k=3)
