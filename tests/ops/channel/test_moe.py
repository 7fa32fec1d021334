"""MoE FFN: a dense loop over experts written here, identities, balancing, causality."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch

from einsearch.ops import aux_loss, create
from einsearch.ops.channel.mlp import GLU
from einsearch.ops.channel.moe import MoE
from tests.ops.checks import assert_per_token


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def swiglu_ref(x: torch.Tensor, w1: torch.Tensor, w3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """x (N, D), w1/w3 (D, H), w2 (H, D)."""
    a = x @ w1
    return (a / (1 + torch.exp(-a)) * (x @ w3)) @ w2


def moe_ref(moe: MoE, x: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every expert on every token, weighted by its gate (0 where not chosen). Returns (y, aux)."""
    batch, length, dim = x.shape
    tokens = x.reshape(-1, dim)
    logits = tokens @ moe.router.weight.T  # (N, E)
    if moe.router_kind == "softmax":
        e = torch.exp(logits - logits.max(-1, keepdim=True).values)
        scores = e / e.sum(-1, keepdim=True)
        select_by = scores.detach()
    else:
        scores = 1 / (1 + torch.exp(-logits))
        select_by = scores.detach() + bias
    chosen = select_by.argsort(-1, descending=True)[:, : moe.top_k]  # (N, k)
    picked = scores.gather(-1, chosen)
    gates = picked / picked.sum(-1, keepdim=True) if moe.top_k > 1 else picked
    y = torch.zeros_like(tokens)
    for expert in range(moe.experts):
        weight = (gates * (chosen == expert)).sum(-1)  # (N,)
        y = y + weight[:, None] * swiglu_ref(tokens, moe.w1[expert], moe.w3[expert], moe.w2[expert])
    if moe.shared is not None:
        s = moe.shared
        y = y + swiglu_ref(tokens, s.w1.weight.T, s.w3.weight.T, s.w2.weight.T)
    aux = None
    if moe.router_kind == "softmax":
        share = torch.stack([(chosen == i).sum() for i in range(moe.experts)]).to(x.dtype) / chosen.numel()
        aux = 0.01 * moe.experts * (share * scores.mean(0)).sum()
    return y.view(batch, length, dim), aux


COMBOS = list(itertools.product((4, 8), (1, 2), ("softmax", "sigmoid"), (False, True)))


@pytest.mark.parametrize("experts,top_k,router,shared", COMBOS)
def test_sparse_dispatch_equals_dense_loop(experts: int, top_k: int, router: str, shared: bool) -> None:
    torch.manual_seed(experts * 10 + top_k)
    moe = create("moe", 16, causal=True, experts=experts, top_k=top_k, router=router,
                 shared_expert=shared, expand=1).double().train()
    if router == "sigmoid":  # a nonzero selection bias, so that selection and gating differ
        moe.select_bias.copy_(0.1 * torch.randn(experts, dtype=torch.float64))
    params = list(moe.parameters())
    for batch, length in [(1, 1), (2, 19), (2, 70)]:  # 70 * 2 * k slots span several row blocks
        x = torch.randn(batch, length, 16, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(batch, length, 16, dtype=torch.float64)
        bias = moe.select_bias.clone() if router == "sigmoid" else None
        y_ref, aux_ref = moe_ref(moe, x, bias)
        y = moe(x)  # train mode: updates the sigmoid router's bias after routing
        assert rel_err(y, y_ref) < 1e-6
        loss, loss_ref = (y * weight).sum(), (y_ref * weight).sum()
        if aux_ref is not None:
            assert rel_err(moe.aux_loss, aux_ref) < 1e-6
            loss, loss_ref = loss + moe.aux_loss, loss_ref + aux_ref
        else:
            assert moe.aux_loss is None
        grads = torch.autograd.grad(loss, [x, *params])
        grads_ref = torch.autograd.grad(loss_ref, [x, *params])
        for g, g_ref in zip(grads, grads_ref):
            assert rel_err(g, g_ref) < 1e-6


@pytest.mark.parametrize("shared", [False, True])
def test_one_expert_equals_dense_swiglu(shared: bool) -> None:
    torch.manual_seed(0)
    moe = MoE(24, experts=1, top_k=1, router="softmax", shared_expert=shared, expand=2).double()
    dense = GLU(24, expand=2, act="swish").double()
    with torch.no_grad():
        moe.w1[0].copy_(dense.w1.weight.T)
        moe.w3[0].copy_(dense.w3.weight.T)
        moe.w2[0].copy_(dense.w2.weight.T)
    x = torch.randn(2, 19, 24, dtype=torch.float64)
    expected = dense(x) + (moe.shared(x) if shared else 0)
    assert rel_err(moe(x), expected) < 1e-12


def _imbalance(moe: MoE, x: torch.Tensor) -> float:
    """Largest expert load over the mean load, in eval mode (no bias update)."""
    moe.eval()
    tokens = x.reshape(-1, x.shape[-1])
    _, chosen = moe.route(tokens)
    load = torch.bincount(chosen.flatten(), minlength=moe.experts).double()
    moe.train()
    return (load.max() / load.mean()).item()


def test_sigmoid_bias_moves_toward_balance() -> None:
    torch.manual_seed(0)
    moe = MoE(16, experts=4, top_k=1, router="sigmoid", bias_rate=0.02)
    direction = torch.randn(16)
    with torch.no_grad():  # expert 0 favoured by every token
        moe.router.weight[0] = 2 * direction
    x = torch.randn(4, 32, 16) + direction
    before = _imbalance(moe, x)
    assert before > 2.0  # the setup is skewed
    router_before = moe.router.weight.detach().clone()
    moe.train()
    for _ in range(100):
        moe(x)
    after = _imbalance(moe, x)
    assert after < before / 2
    assert moe.select_bias[0] < 0  # the overloaded expert is picked less
    assert torch.equal(moe.router.weight, router_before)  # not by gradient descent
    assert all(name != "select_bias" for name, _ in moe.named_parameters())
    bias = moe.select_bias.clone()
    moe.eval()
    moe(x)
    assert torch.equal(moe.select_bias, bias)  # eval forwards leave it alone


@pytest.mark.parametrize("router,top_k,shared", [("softmax", 2, False), ("softmax", 1, True),
                                                 ("sigmoid", 2, True), ("sigmoid", 1, False)])
def test_per_token_causality(router: str, top_k: int, shared: bool) -> None:
    """Perturbing position t changes nothing at any other position, bit for bit (float32)."""
    torch.manual_seed(0)
    moe = create("moe", 32, causal=True, experts=8, top_k=top_k, router=router,
                 shared_expert=shared).train()
    x = torch.randn(2, 45, 32)
    for t in (0, 13, 44):  # a perturbation of 5 is large enough to reroute position t
        assert_per_token(lambda inp: copy.deepcopy(moe)(inp), x, t, scale=5.0)


def test_aux_loss_in_train_mode_only() -> None:
    torch.manual_seed(0)
    moe = create("moe", 32, causal=True, router="softmax")
    wrapper = torch.nn.Sequential(moe)
    x = torch.randn(2, 19, 32)
    moe.train()
    moe(x)
    loss = aux_loss(wrapper)
    assert loss is moe.aux_loss and loss.ndim == 0 and loss.requires_grad
    loss.backward()
    assert moe.router.weight.grad.abs().sum() > 0  # the balancing loss trains the router
    moe.eval()
    moe(x)
    assert moe.aux_loss is None and aux_loss(wrapper) is None
    sigmoid = create("moe", 32, causal=True, router="sigmoid").train()
    sigmoid(x)
    assert sigmoid.aux_loss is None  # aux-loss-free balancing


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="top_k"):
        MoE(16, experts=2, top_k=3)
    with pytest.raises(ValueError, match="router"):
        MoE(16, router="hash")


# ---- fixed-shape (export) dispatch, active parameters --------------------------------------------

def _both_paths(moe: MoE, x: torch.Tensor, gates: torch.Tensor, chosen: torch.Tensor):
    """(output, gradients of x and the expert weights) of dispatch_loop and dispatch_fixed."""
    tokens = x.reshape(-1, x.shape[-1])
    weight = torch.randn(tokens.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    out = []
    for path in (moe.dispatch_loop, moe.dispatch_fixed):
        y = path(tokens, gates, chosen)
        out.append((y, torch.autograd.grad((y * weight).sum(), [x, moe.w1, moe.w2, moe.w3], retain_graph=True)))
    return out


def _dispatch_ref(moe: MoE, tokens: torch.Tensor, gates: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Token by token: sum over its slots of gate * its expert's SwiGLU."""
    rows = []
    for i in range(tokens.shape[0]):
        row = torch.zeros_like(tokens[0])
        for slot in range(chosen.shape[1]):
            e = int(chosen[i, slot])
            row = row + gates[i, slot] * swiglu_ref(tokens[i:i + 1], moe.w1[e], moe.w3[e], moe.w2[e])[0]
        rows.append(row)
    return torch.stack(rows)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("experts,top_k,skewed", [(8, 2, False), (4, 1, False), (8, 2, True), (4, 1, True)])
def test_fixed_shape_dispatch_equals_the_loop(dtype, experts: int, top_k: int, skewed: bool) -> None:
    """The export path (no data-dependent shapes) and the eager loop agree, outputs and gradients,
    and equal a token-by-token reference; `skewed` sends every token to the same experts (one
    expert's segment then fills the buffer's bound)."""
    torch.manual_seed(experts + top_k)
    moe = MoE(16, experts=experts, top_k=top_k, expand=1).to(dtype)
    for batch, length in [(1, 1), (1, 3), (2, 19), (3, 70)]:  # fewer slots than a block, and many blocks
        x = torch.randn(batch, length, 16, dtype=dtype, requires_grad=True)
        tokens = x.reshape(-1, 16)
        if skewed:  # experts E-1, E-2, ... for every token
            chosen = torch.arange(experts - 1, experts - 1 - top_k, -1).expand(tokens.shape[0], top_k)
            gates = torch.rand(tokens.shape[0], top_k, dtype=dtype)
        else:
            gates, chosen = moe.route(tokens)
        (y_loop, g_loop), (y_fixed, g_fixed) = _both_paths(moe, x, gates, chosen)
        assert rel_err(y_fixed, y_loop) < 1e-6
        for g, g_ref in zip(g_fixed, g_loop):
            assert rel_err(g, g_ref) < 1e-6
        if dtype == torch.float64:
            assert rel_err(y_fixed, _dispatch_ref(moe, tokens, gates, chosen)) < 1e-10


def test_fixed_shape_dispatch_is_causal_bit_exact() -> None:
    torch.manual_seed(0)
    moe = create("moe", 32, causal=True, experts=8, top_k=2).eval()
    x = torch.randn(2, 45, 32)

    def run(inp: torch.Tensor) -> torch.Tensor:
        tokens = inp.reshape(-1, 32)
        return moe.dispatch_fixed(tokens, *moe.route(tokens)).view(2, 45, 32)

    assert_per_token(run, x, 13, scale=5.0)


@pytest.mark.parametrize("router", ["softmax", "sigmoid"])
def test_torch_export_uses_the_fixed_path_and_generalises(router: str) -> None:
    """torch.export traces the MoE; the graph is right for inputs whose routing differs from the
    example's (a jit.trace of the loop would have frozen the example's block counts)."""
    torch.manual_seed(0)
    moe = create("moe", 32, causal=True, router=router, shared_expert=True).eval()
    x = torch.randn(2, 24, 32)
    with torch.no_grad():
        graph = torch.export.export(moe, (x,)).module()
        targets = {str(node.target) for node in graph.graph.nodes}
        assert any("bucketize" in t for t in targets)  # dispatch_fixed, not the loop
        for seed in range(3):
            other = 3 * torch.randn(2, 24, 32, generator=torch.Generator().manual_seed(seed))
            assert rel_err(graph(other), moe(other)) < 1e-6


@pytest.mark.parametrize("experts,shared,expand", [(1, False, 2), (2, True, 1), (4, False, 4), (3, True, 2)])
def test_active_params_count_router_and_top_k_experts(experts: int, shared: bool, expand: int) -> None:
    """With top_k = experts every weight is used: the hook equals the module's parameter count; with
    top_k = 1 it is the router plus one expert (plus the shared one)."""
    from einsearch.ops.channel.moe import moe_active_params
    dim = 24
    all_used = MoE(dim, experts=experts, top_k=experts, shared_expert=shared, expand=expand)
    hp = {"experts": experts, "top_k": experts, "shared_expert": shared, "expand": expand}
    assert moe_active_params(dim, hp) == sum(p.numel() for p in all_used.parameters())
    dense = sum(p.numel() for p in GLU(dim, expand=expand, act="swish").parameters())
    one = moe_active_params(dim, {**hp, "top_k": 1})
    assert one == dim * experts + (1 + shared) * dense


def test_torch_export_with_dynamic_batch_and_length() -> None:
    torch.manual_seed(0)
    moe = create("moe", 32, causal=True, top_k=2).eval()
    batch, length = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("length", min=2, max=512)
    with torch.no_grad():
        graph = torch.export.export(moe, (torch.randn(2, 24, 32),),
                                    dynamic_shapes=({0: batch, 1: length},)).module()
        for b, n in [(1, 24), (3, 5), (5, 100)]:  # fewer slots than a block, and several blocks
            x = torch.randn(b, n, 32)
            assert rel_err(graph(x), moe(x)) < 1e-6
