"""DeltaNet (Schlag et al., 2021; Yang et al., 2024): linear attention updated by the delta rule."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import ShortConv, split_heads
from einsearch.ops.recurrent.chunk import delta_scan
from einsearch.ops.recurrent.norm import HeadRMSNorm
from einsearch.ops.registry import register

CONV_KERNEL = 4
L2_EPS = 1e-6


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + L2_EPS)


def validate_heads(dim: int, hp: dict) -> str | None:
    return f"heads={hp['heads']} must divide dim={dim}" if dim % hp["heads"] else None


def delta_seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    # per token: K K^T, Q K^T, the triangular solve (~C (dk + dv)) and three state products
    d, chunk = dim // hp["heads"], hp["chunk"]
    return hp["heads"] * (6 * chunk * d + 6 * d * d)


def delta_state_size(dim: int, seq_len: int, hp: dict) -> int:
    return dim * dim // hp["heads"] + 3 * dim * CONV_KERNEL  # S per head, plus the q, k, v conv windows


@register(
    "deltanet", category="recurrent", cost="L",
    hparams={"heads": (1, 2, 4, 8), "chunk": (16, 32, 64)},
    state_size=delta_state_size, seq_flops=delta_seq_flops, validate=validate_heads,
    compute_only=("chunk",),
)
class DeltaNet(nn.Module):
    """S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T, o_t = S_t^T q_t, per head.

    q, k, v: projection, causal short conv (kernel 4, no bias), SiLU; q, k L2-normalised per head,
    q scaled by d^-1/2; beta_t = sigmoid(W_b x_t) per head. Output W_o(RMSNorm_head(o)). Chunked by
    the UT transform (rec_chunk.delta_scan). A recurrence: with causal=False it runs the same causal
    form (convs included). Decoding state: (S, q, k, v conv windows).
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, chunk: int = 16):
        super().__init__()
        problem = validate_heads(dim, {"heads": heads})
        if problem:
            raise ValueError(f"{self.op_name}: {problem}")
        self.causal, self.heads, self.chunk = causal, heads, chunk
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.convs = nn.ModuleList(ShortConv(dim, CONV_KERNEL, causal=True, bias=False, silu=True)
                                   for _ in range(3))
        self.b_proj = nn.Linear(dim, heads, bias=False)
        self.norm = HeadRMSNorm(dim // heads)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def _log_decay(self, x: torch.Tensor) -> torch.Tensor | None:
        """log a_t (B, H, L); DeltaNet has no decay."""
        return None

    def _output(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), o (B, H, L, d) -> (B, L, D)."""
        return self.o_proj(self.norm(o))

    def _heads(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, x: torch.Tensor):
        """Conv (+ SiLU) outputs (B, L, D) -> q, k, v (B, H, L, d) and beta (B, H, L)."""
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
        q = l2_normalize(q) * q.shape[-1] ** -0.5
        beta = torch.sigmoid(self.b_proj(x)).transpose(1, 2)
        return q, l2_normalize(k), v, beta

    def scan(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """(B, L, D) -> (y, (S (B, H, d, d), q, k, v conv windows (B, D, 4))) after the last token."""
        projected = [self.q_proj(x), self.k_proj(x), self.v_proj(x)]
        q, k, v, beta = self._heads(*(conv(p) for conv, p in zip(self.convs, projected)), x)
        o, s = delta_scan(q, k, v, beta, self._log_decay(x), self.chunk)
        # the last CONV_KERNEL inputs of each conv, oldest first, zeros before the sequence start
        windows = tuple(F.pad(p.transpose(1, 2), (CONV_KERNEL, 0))[..., -CONV_KERNEL:] for p in projected)
        return self._output(x, o), (s, *windows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.scan(x)[0]

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        w = self.o_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        dim = w.shape[0]
        d = dim // self.heads
        window = torch.zeros(batch, dim, CONV_KERNEL, device=device, dtype=dtype)
        return (torch.zeros(batch, self.heads, d, d, device=device, dtype=dtype), window, window, window)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        s, *windows = state
        projected = [self.q_proj(x_t), self.k_proj(x_t), self.v_proj(x_t)]
        stepped = [conv.step(p, w) for conv, p, w in zip(self.convs, projected, windows)]
        x = x_t.unsqueeze(1)
        q, k, v, beta = self._heads(*(y.unsqueeze(1) for y, _ in stepped), x)  # (B, H, 1, d), (B, H, 1)
        log_decay = self._log_decay(x)
        a = 1.0 if log_decay is None else log_decay.exp().unsqueeze(-1)  # (B, H, 1, 1)
        beta = beta.unsqueeze(-1)
        s = a * s
        s = s + beta * k.transpose(-1, -2) @ (v - k @ s)
        return self._output(x, q @ s).squeeze(1), (s, *(w for _, w in stepped))
