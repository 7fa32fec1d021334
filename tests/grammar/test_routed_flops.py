"""FLOPs per token of routed primitives in `check()`: a token is charged the experts it is routed to
(top_k of E, plus the router and the shared expert), while parameters count every expert."""
from __future__ import annotations

import pytest

from einsearch import check
from einsearch.ops import count_params

CAUSAL = "toy-causal:vocab=16,seq=16"
NONCAUSAL = "toy-classify:vocab=16,seq=16"
DIM, SEQ = 32, 16


def net(op: str) -> str:
    return f"net({DIM}, block(pre:rms, {op}))"


def glu_params(expand: int) -> int:
    return count_params("glu", DIM, True, {"expand": expand})


def test_one_routed_expert_costs_a_dense_ffn_plus_the_router():
    """top_k = 1: the FLOPs of the dense SwiGLU of the same width plus 2 * D * E for the router."""
    dense = check(net("glu(expand=2)"), CAUSAL)
    for experts in (4, 8):
        moe = check(net(f"moe(experts={experts}, top_k=1, expand=2)"), CAUSAL)
        assert moe.flops_per_token - dense.flops_per_token == 2 * DIM * experts
        # parameters still hold every expert
        assert moe.params - dense.params == (experts - 1) * glu_params(2) + DIM * experts


@pytest.mark.parametrize("router", ["softmax", "sigmoid"])
@pytest.mark.parametrize("shared", [False, True])
def test_top_k_experts_are_charged_not_all(router: str, shared: bool):
    dense = check(net("glu(expand=2)"), CAUSAL)
    flag = str(shared).lower()
    four = check(net(f"moe(experts=4, top_k=2, router={router}, shared_expert={flag}, expand=2)"), CAUSAL)
    eight = check(net(f"moe(experts=8, top_k=2, router={router}, shared_expert={flag}, expand=2)"), CAUSAL)
    active = DIM * 8 + (2 + shared) * glu_params(2)  # router, two experts, the shared one
    assert eight.flops_per_token - dense.flops_per_token == 2 * (active - glu_params(2))
    # doubling the experts adds parameters but only the router's FLOPs
    assert eight.flops_per_token - four.flops_per_token == 2 * DIM * 4
    assert eight.params - four.params == 4 * glu_params(2) + 4 * DIM


def test_graph_routed_moes_charge_top_k_experts():
    hp = "experts=8, top_k=1, expand=1"
    plain = check(net(f"moe({hp})"), NONCAUSAL)
    attention = check(net(f"attention_moe({hp})"), NONCAUSAL)
    similarity = check(net(f"similarity_moe({hp})"), NONCAUSAL)
    assert attention.params == plain.params
    assert attention.flops_per_token - plain.flops_per_token == 2 * SEQ * 8  # S @ P
    # W_s x (2 D^2) and its scores against every token (2 L D)
    assert similarity.flops_per_token - attention.flops_per_token == 2 * DIM * DIM + 2 * SEQ * DIM
    assert similarity.flops_per_token < 2 * similarity.params  # not every expert is charged


def test_bam_is_charged_every_expert_because_it_computes_every_expert():
    """BAM computes all E attention experts densely (the gates zero the unselected ones), so FLOPs
    count every weight and E attentions: going from 2 to 4 experts adds 2 * (new weights) + 2
    attentions (4 L D each)."""
    two = check(net("bam(experts=2, top_k=1, heads=2)"), CAUSAL)
    four = check(net("bam(experts=4, top_k=1, heads=2)"), CAUSAL)
    assert four.flops_per_token - two.flops_per_token == 2 * (four.params - two.params) + 2 * 4 * SEQ * DIM
