"""Mamba-2 (Dao & Gu, 2024): the SSD layer, a selective SSM with one scalar decay per head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import RMSNorm, merge_heads
from einsearch.ops.conv.common import depthwise_step
from einsearch.ops.recurrent.chunk import scalar_scan
from einsearch.ops.registry import register
from einsearch.ops.recurrent.ssm_common import conv_with_window, dt_bias_init

EXPAND = 2
D_CONV = 4


def _validate(dim: int, hp: dict) -> str | None:
    if (EXPAND * dim) % hp["headdim"]:
        return f"headdim={hp['headdim']} must divide the expanded width {EXPAND}*dim={EXPAND * dim}"
    return None


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    d_inner, n = EXPAND * dim, hp["d_state"]
    # SSM state heads*headdim*N = d_inner*N, plus the conv window over (x, B, C)
    return d_inner * n + (d_inner + 2 * n) * (D_CONV - 1)


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    d_inner, n, c = EXPAND * dim, hp["d_state"], hp["chunk"]
    heads = d_inner // hp["headdim"]
    # per token: scores C B^T over a chunk per head (2 c n), their product with X (2 c headdim),
    # and the state's read and write (4 n headdim per head)
    return heads * 2 * c * n + 2 * c * d_inner + 4 * n * d_inner


@register(
    "mamba2", category="ssm", cost="L",
    hparams={"headdim": (16, 32, 64), "d_state": (16, 32, 64), "chunk": (16, 32, 64)},
    state_size=_state_size, seq_flops=_seq_flops, validate=_validate,
    compute_only=("chunk",),
)
class Mamba2(nn.Module):
    """Mamba-2 block: in_proj -> (z, x, B, C, dt); causal short conv + SiLU on (x, B, C);
    SSD h_t = exp(dt_t A_h) h_{t-1} + dt_t x_t B_t^T per head (A_h a scalar), y_t = h_t C_t + D_h x_t;
    gated RMSNorm(y * SiLU(z)); out_proj. Expand 2, d_conv 4, one group of B, C shared by the heads.

    The training path is SSD's chunked form (rec_chunk.scalar_scan): inside a chunk
    Y = (L o C B^T)(dt X) with L_ij = prod_{j<k<=i} a_k, across chunks a loop carrying the state.
    Mamba-2 is a recurrence: with causal=False it runs the same causal form.
    """

    def __init__(self, dim: int, causal: bool = True, headdim: int = 64, d_state: int = 64, chunk: int = 64):
        super().__init__()
        problem = _validate(dim, {"headdim": headdim})
        if problem:
            raise ValueError(f"mamba2: {problem}")
        self.causal, self.chunk, self.d_state, self.headdim = causal, chunk, d_state, headdim
        self.d_inner = EXPAND * dim
        self.heads = self.d_inner // headdim
        conv_width = self.d_inner + 2 * d_state  # the conv runs over x, B and C together
        self.in_proj = nn.Linear(dim, self.d_inner + conv_width + self.heads, bias=False)
        self.conv = nn.Conv1d(conv_width, conv_width, D_CONV, groups=conv_width)
        self.dt_bias = nn.Parameter(dt_bias_init(self.heads))
        # A_h = -exp(A_log) with A_h drawn uniformly in [1, 16], as in Mamba-2
        self.A_log = nn.Parameter(torch.log(torch.empty(self.heads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.heads))
        self.norm = RMSNorm(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)

    def _split(self, zxbcdt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(..., in_proj width) -> z (..., d_inner), xBC (..., d_inner + 2N), dt (..., H)."""
        return zxbcdt.split([self.d_inner, self.d_inner + 2 * self.d_state, self.heads], dim=-1)

    def _output(self, y: torch.Tensor, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """SSD output y and the skip input x (..., d_inner) -> gated, normed, projected (..., dim)."""
        skip = (x.unflatten(-1, (self.heads, self.headdim)) * self.D[:, None]).flatten(-2)
        return self.out_proj(self.norm((y + skip) * F.silu(z)))

    def scan(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(B, L, D) -> (y (B, L, D), state after the last token: (h (B, H, N, headdim), conv window))."""
        b, length, _ = x.shape
        z, xbc, dt = self._split(self.in_proj(x))
        h0, window = (None, None) if state is None else state
        xbc, window = conv_with_window(self.conv, xbc, window, silu=True)
        xs, B, C = xbc.split([self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias).transpose(1, 2)  # (B, H, L)
        log_decay = dt * -torch.exp(self.A_log)[:, None]  # (B, H, L), log a_t <= 0
        v = xs.view(b, length, self.heads, self.headdim).transpose(1, 2) * dt.unsqueeze(-1)  # (B, H, L, P)
        # one group: C and B (B, 1, L, N) are shared by the heads
        y, h = scalar_scan(C.unsqueeze(1), B.unsqueeze(1), v, log_decay, self.chunk, h0)  # (B, H, L, P), (B, H, N, P)
        return self._output(merge_heads(y), xs, z), (h, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.scan(x)[0]

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h (B, H, N, headdim) zeros, conv window (B, d_inner + 2N, d_conv - 1) zeros)."""
        w = self.out_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        h = torch.zeros(batch, self.heads, self.d_state, self.headdim, device=device, dtype=dtype)
        window = torch.zeros(batch, self.conv.in_channels, D_CONV - 1, device=device, dtype=dtype)
        return h, window

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        h, window = state
        z, xbc, dt = self._split(self.in_proj(x_t))
        xbc, window = depthwise_step(self.conv, xbc, window)
        xs, B, C = F.silu(xbc).split([self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (B, H)
        decay = torch.exp(dt * -torch.exp(self.A_log))  # (B, H)
        xh = xs.view(-1, self.heads, self.headdim) * dt.unsqueeze(-1)  # (B, H, P)
        h = decay[..., None, None] * h + B[:, None, :, None] * xh[:, :, None, :]  # (B, H, N, P)
        y = (C[:, None, None, :] @ h).squeeze(-2)  # (B, H, P)
        return self._output(y.flatten(1), xs, z), (h, window)
