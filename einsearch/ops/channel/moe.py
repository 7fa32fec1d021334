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

from einsearch.ops.channel.mlp import GLU, glu_hidden
from einsearch.ops.common import HasAuxLoss
from einsearch.ops.registry import register

ROUTERS = ("softmax", "sigmoid")
MAX_ROW_BLOCK = 64  # rows per expert matmul block at most (see MoE.dispatch)


def _row_block(slots: int) -> int:
    """Rows per block: MAX_ROW_BLOCK, or the smallest power of two >= slots when fewer (decoding).

    A function of the number of routed slots alone, never of the routing: see MoE.dispatch.
    """
    return min(MAX_ROW_BLOCK, 1 << max(slots - 1, 0).bit_length())


def moe_active_params(dim: int, hp: dict) -> int:
    """Weights one token uses: the router, top_k SwiGLU experts, the shared expert if any."""
    expert = 3 * dim * glu_hidden(dim, hp["expand"])
    return dim * hp["experts"] + (hp["top_k"] + int(hp["shared_expert"])) * expert


@register(
    "moe", category="moe", cost="L",
    hparams={"experts": (4, 8), "top_k": (1, 2), "router": ROUTERS,
             "shared_expert": (False, True), "expand": (1, 2, 4)},
    active_params=moe_active_params,  # FLOPs count top_k experts per token, not all of them
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
        """Number of routed slots per expert (E,) (a one-hot sum: its shape never depends on the data)."""
        experts = torch.arange(self.experts, device=chosen.device)
        return (chosen.flatten()[:, None] == experts).sum(0).to(dtype)

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

        The N*k (token, slot) pairs are grouped by expert into a buffer of row blocks, each block
        holding rows of one expert only (an expert's rows padded to whole blocks), and every block is
        one fixed-size SwiGLU of its expert. Fixed-size blocks keep causality bit-exact: a BLAS
        matmul's rounding for one row can depend on how many rows it gets, but here a token's output
        does not depend on which or how many other tokens share its expert, only on N (the block
        size is a function of N*k alone).

        Two executions of that same blocked computation (they agree to rounding, in practice bit for
        bit): eagerly, a Python loop over the experts' used blocks, whose sizes are read from the
        routing (a host sync; the faster one on CPU); under torch.export / torch.compile, a buffer
        of a size bounded in advance, so no shape depends on the data (see `dispatch_fixed`).
        """
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return self.dispatch_fixed(tokens, gates, chosen)
        return self.dispatch_loop(tokens, gates, chosen)

    def _layout(self, chosen: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
        """chosen (N, k) -> row of each slot in the blocked buffer (N*k,), blocks per expert (E,)."""
        slot_expert = chosen.flatten()  # (N*k,) expert of each (token, slot)
        one_hot = (slot_expert[:, None] == torch.arange(self.experts, device=chosen.device)).long()  # (N*k, E)
        rank = (one_hot.cumsum(0) - 1).gather(1, slot_expert[:, None]).squeeze(1)  # place within expert
        blocks_of = (one_hot.sum(0) + block - 1) // block  # (E,) blocks per expert
        first_row = (blocks_of.cumsum(0) - blocks_of) * block  # (E,) first row of each expert's segment
        return first_row[slot_expert] + rank, blocks_of

    def _combine(self, per_slot: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Per-slot outputs (N*k, D) in slot order, gates (N, k) -> (N, D)."""
        return (per_slot.view(gates.shape[0], self.top_k, -1) * gates.unsqueeze(-1)).sum(1)

    def dispatch_loop(self, tokens: torch.Tensor, gates: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Eager form: the buffer holds the used blocks only; one bmm per expert over its blocks."""
        n, dim = tokens.shape
        block = _row_block(n * self.top_k)
        slot_row, blocks_of = self._layout(chosen, block)
        rows = (blocks_of * block).tolist()  # data-dependent sizes (why torch.export cannot use this)
        routed = tokens.new_zeros(sum(rows), dim).index_copy(
            0, slot_row, tokens.repeat_interleave(self.top_k, dim=0))  # (rows, D), grouped by expert
        outputs = []
        # unbind once: indexing w[e] per expert would allocate a full-size gradient each time
        for x_e, w1, w3, w2 in zip(routed.split(rows), self.w1.unbind(0), self.w3.unbind(0), self.w2.unbind(0)):
            if x_e.shape[0]:
                blocks = x_e.view(-1, block, dim)  # (nb_e, block, D)
                nb = blocks.shape[0]
                hidden = F.silu(torch.bmm(blocks, w1.expand(nb, -1, -1))) * torch.bmm(blocks, w3.expand(nb, -1, -1))
                outputs.append(torch.bmm(hidden, w2.expand(nb, -1, -1)).view(-1, dim))
        return self._combine(torch.cat(outputs).index_select(0, slot_row), gates)

    def dispatch_fixed(self, tokens: torch.Tensor, gates: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Export form, no data-dependent shape: the buffer has n_blocks = (N*k + m*(block-1)) // block
        blocks (m = min(E, N*k) experts in use at most), the bound on the used ones; each block's
        expert weights are gathered, and one bmm per weight covers all blocks. Blocks past the used
        ones hold zero rows and are never read back. No host sync, no loop over experts."""
        n, dim = tokens.shape
        slots = n * self.top_k
        # a symbolic N (torch.export with dynamic_shapes) keeps the full block size: no guard on N
        block = _row_block(slots) if isinstance(slots, int) else MAX_ROW_BLOCK
        n_blocks = (slots + torch.sym_min(self.experts, slots) * (block - 1)) // block
        slot_row, blocks_of = self._layout(chosen, block)
        block_ids = torch.arange(n_blocks, device=tokens.device)
        # expert of each block: the first whose segment ends after it (unused blocks: the last expert)
        block_expert = torch.bucketize(block_ids, blocks_of.cumsum(0), right=True).clamp_max(self.experts - 1)
        routed = tokens.new_zeros(n_blocks * block, dim).index_copy(
            0, slot_row, tokens.repeat_interleave(self.top_k, dim=0)).view(n_blocks, block, dim)
        w1, w3, w2 = (w.index_select(0, block_expert) for w in (self.w1, self.w3, self.w2))  # (nb, ., .)
        hidden = F.silu(torch.bmm(routed, w1)) * torch.bmm(routed, w3)  # (nb, block, H)
        per_slot = torch.bmm(hidden, w2).view(-1, dim).index_select(0, slot_row)  # (N*k, D), slot order
        return self._combine(per_slot, gates)

    def route_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Routing for a whole batch x (B, L, D): (gates, chosen) per token; routers that look across
        positions override this."""
        return self.route(x.reshape(-1, x.shape[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        batch, length, dim = x.shape
        tokens = x.reshape(batch * length, dim)
        gates, chosen = self.route_batch(x)
        y = self.dispatch(tokens, gates, chosen)
        if self.shared is not None:
            y = y + self.shared(tokens)
        return y.view(batch, length, dim)
