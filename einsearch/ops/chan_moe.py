"""Mixture-of-experts FFN: SwiGLU experts, top-k routing, dropless sparse dispatch.

Two routers:
- "softmax": top-k of softmax(W_r x); load-balancing loss alpha * E * sum_i f_i P_i (Switch /
  Mixtral), with f_i the share of routed slots that go to expert i and P_i the mean router
  probability of expert i; alpha = 0.01. Exposed as `self.aux_loss` in training mode.
- "sigmoid" (DeepSeek-V3, aux-loss-free): scores s = sigmoid(W_r x); experts are *selected* by
  top-k of s + b, but *weighted* by s alone. The bias b is a buffer nudged after each training
  forward, outside gradient descent: b_i += rate * sign(mean load - load_i), so overloaded experts
  get picked less.

Gates: the selected scores, renormalised to sum 1 when top_k > 1. With top_k = 1 the raw score is
the gate (as in Switch), because a renormalised single gate is always 1 and the router would get no
gradient.

Dropless: every token reaches all of its top_k experts (no capacity limit). Capacity dropping
would make one token's output depend on how many other tokens, including later ones, chose the same
expert, which breaks causality. Each token is routed on its own, so the mixer is causal whatever
`causal` says.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.chan_mlp import GLU, glu_hidden
from einsearch.ops.common import HasAuxLoss
from einsearch.ops.registry import register

ROUTERS = ("softmax", "sigmoid")
ROW_BLOCK = 64  # rows per expert matmul (see MoE.dispatch)


def _swiglu_blocks(x: torch.Tensor, w1: torch.Tensor, w3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """One SwiGLU expert on rows x (n, D), n a multiple of ROW_BLOCK, one fixed-size matmul per block."""
    blocks = x.view(-1, ROW_BLOCK, x.shape[-1])  # (nb, ROW_BLOCK, D)
    nb = blocks.shape[0]
    hidden = F.silu(torch.bmm(blocks, w1.expand(nb, -1, -1))) * torch.bmm(blocks, w3.expand(nb, -1, -1))
    return torch.bmm(hidden, w2.expand(nb, -1, -1)).view(-1, w2.shape[-1])  # (n, D)


@register(
    "moe", category="channel", cost="L",
    hparams={"experts": (4, 8), "top_k": (1, 2), "router": ROUTERS,
             "shared_expert": (False, True), "expand": (1, 2, 4)},
    defaults={"experts": 8, "top_k": 2, "router": "softmax", "shared_expert": False, "expand": 2},
)
class MoE(HasAuxLoss):
    """Dropless top-k MoE of SwiGLU experts (hidden round(2/3 * expand * D) each), optional shared expert.

    Parameters hold all experts, but a token uses top_k of them (plus the shared one): the compute
    per token is that of top_k (+1) dense SwiGLUs.
    """

    def __init__(self, dim: int, causal: bool = True, experts: int = 8, top_k: int = 2,
                 router: str = "softmax", shared_expert: bool = False, expand: int = 2,
                 aux_alpha: float = 0.01, bias_rate: float = 1e-3):
        super().__init__()
        if router not in ROUTERS:
            raise ValueError(f"moe: unknown router {router!r}; choose from {list(ROUTERS)}")
        if not 1 <= top_k <= experts:
            raise ValueError(f"moe: top_k={top_k} must be between 1 and experts={experts}")
        hidden = glu_hidden(dim, expand)
        self.experts, self.top_k, self.router_kind = experts, top_k, router
        self.aux_alpha, self.bias_rate = aux_alpha, bias_rate
        self.router = nn.Linear(dim, experts, bias=False)
        # expert weights stacked on a leading axis: x @ w1[e] is expert e's gate branch
        self.w1 = nn.Parameter(torch.empty(experts, dim, hidden))
        self.w3 = nn.Parameter(torch.empty(experts, dim, hidden))
        self.w2 = nn.Parameter(torch.empty(experts, hidden, dim))
        for weight in (self.w1, self.w3, self.w2):  # nn.Linear's default init, per expert
            bound = weight.shape[1] ** -0.5
            nn.init.uniform_(weight, -bound, bound)
        self.shared = GLU(dim, causal, expand=expand, act="swish") if shared_expert else None
        # selection bias of the sigmoid router: a buffer, changed by `_update_bias`, never by gradients
        self.register_buffer("select_bias", torch.zeros(experts) if router == "sigmoid" else None)
        self.aux_loss: torch.Tensor | None = None

    def route(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (N, D) -> gates (N, k), expert indices (N, k); sets aux_loss, updates the bias."""
        logits = self.router(tokens)  # (N, E)
        self.aux_loss = None
        if self.router_kind == "softmax":
            probs = logits.softmax(-1)
            chosen_scores, chosen = probs.topk(self.top_k, dim=-1)
            if self.training:
                self.aux_loss = self._balance_loss(probs, chosen)
        else:
            scores = torch.sigmoid(logits)
            # the bias only picks experts; the gates come from the unbiased scores
            chosen = (scores.detach() + self.select_bias).topk(self.top_k, dim=-1).indices
            chosen_scores = scores.gather(-1, chosen)
            if self.training:
                self._update_bias(chosen)
        if self.top_k > 1:
            chosen_scores = chosen_scores / chosen_scores.sum(-1, keepdim=True)
        return chosen_scores, chosen

    def _load(self, chosen: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Number of routed slots per expert (E,)."""
        return torch.bincount(chosen.flatten(), minlength=self.experts).to(dtype)

    def _balance_loss(self, probs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        share = self._load(chosen, probs.dtype) / chosen.numel()  # f_i, sums to 1
        mean_prob = probs.mean(0)  # P_i
        return self.aux_alpha * self.experts * (share * mean_prob).sum()

    @torch.no_grad()
    def _update_bias(self, chosen: torch.Tensor) -> None:
        load = self._load(chosen, self.select_bias.dtype)
        self.select_bias += self.bias_rate * torch.sign(load.mean() - load)

    def dispatch(self, tokens: torch.Tensor, gates: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Sparse dispatch: each expert runs on its routed tokens only. (N, D) -> (N, D).

        Each expert's rows are padded to whole blocks of ROW_BLOCK and multiplied block by block
        (bmm), because a BLAS matmul's rounding for one row depends on how many rows it gets: with
        a plain (n_e, D) @ (D, H) a later token joining expert e would move earlier tokens' outputs
        in the last bits. With fixed-size blocks a token's output does not depend on the other tokens
        routed with it, so causality holds bit for bit.
        """
        n, dim = tokens.shape
        slot_expert = chosen.flatten()  # (N*k,) expert of each (token, slot)
        one_hot = F.one_hot(slot_expert, self.experts)  # (N*k, E)
        rank = (one_hot.cumsum(0) - 1).gather(1, slot_expert[:, None]).squeeze(1)  # place within expert
        counts = one_hot.sum(0)  # (E,)
        padded = (counts + ROW_BLOCK - 1) // ROW_BLOCK * ROW_BLOCK
        start = padded.cumsum(0) - padded  # first row of each expert's segment
        slot_row = start[slot_expert] + rank  # (N*k,) row of each slot in the padded buffer
        routed = tokens.new_zeros(int(padded.sum()), dim).index_copy(
            0, slot_row, tokens.repeat_interleave(self.top_k, dim=0))  # (rows, D), grouped by expert
        outputs = []
        # unbind once: indexing w[e] per expert would allocate a full-size gradient each time
        for x_e, w1, w3, w2 in zip(routed.split(padded.tolist()), self.w1.unbind(0),
                                   self.w3.unbind(0), self.w2.unbind(0)):
            if x_e.shape[0]:
                outputs.append(_swiglu_blocks(x_e, w1, w3, w2))
        per_slot = torch.cat(outputs).index_select(0, slot_row)  # (N*k, D), back in slot order
        return (per_slot.view(n, self.top_k, dim) * gates.unsqueeze(-1)).sum(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        batch, length, dim = x.shape
        tokens = x.reshape(batch * length, dim)
        gates, chosen = self.route(tokens)
        y = self.dispatch(tokens, gates, chosen)
        if self.shared is not None:
            y = y + self.shared(tokens)
        return y.view(batch, length, dim)
