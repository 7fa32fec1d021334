"""OverLoCK's ContMix (Lou & Yu, 2025): a dynamic depthwise convolution whose kernels come from
each token's affinity to a few pooled region tokens, in 1-D."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.registry import register

SMALL_KERNEL = 5  # OverLoCK's smk_size: the first half of the channels gets this kernel width


def _validate(dim: int, hp: dict) -> str | None:
    if dim % (2 * hp["heads"]):
        return f"2*heads={2 * hp['heads']} must divide dim={dim} (two kernel sizes x heads groups)"
    return None


def region_bounds(n: int, regions: int) -> list[tuple[int, int]]:
    """Adaptive average pooling's bins over n positions: [floor(s n / S), ceil((s+1) n / S))."""
    return [((s * n) // regions, -((-(s + 1) * n) // regions)) for s in range(regions)]


def _prefix_region_index(length: int, regions: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """start, end (L, S) of the bins of each prefix x[0..t] (n = t + 1), as in region_bounds."""
    n = torch.arange(1, length + 1, device=device)[:, None]  # (L, 1)
    s = torch.arange(regions, device=device)[None, :]  # (1, S)
    return (s * n) // regions, -((-(s + 1) * n) // regions)


def _taps(v: torch.Tensor, kernel: int, causal: bool) -> torch.Tensor:
    """v (B, L, ...) -> (B, L, ..., kernel): tap j of position t is v[t + j - (k-1)] (causal) or
    v[t + j - (k-1)//2] (centred); zeros outside the sequence."""
    before = kernel - 1 if causal else (kernel - 1) // 2
    pad = [0, 0] * (v.dim() - 2) + [before, kernel - 1 - before]
    return F.pad(v, pad).unfold(1, kernel, 1)


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    taps, s, g = SMALL_KERNEL + hp["kernel"], hp["regions"], hp["heads"]
    # pooling and affinities (D/2 channels x S regions), the kernel map run once per head
    # (counted once by the weights), the softmax, and the aggregation over the taps
    return 3 * s * dim // 2 + 2 * (g - 1) * s * taps + 4 * g * taps + dim * taps


@register(
    "contmix", category="convolution", cost="L",
    hparams={"heads": (1, 2, 4), "kernel": (7, 11, 15), "regions": (4, 8)},
    validate=_validate, seq_flops=_seq_flops,
    # no step form: the regions of a growing prefix move, so decoding keeps every past key
    state_size=lambda dim, seq_len, hp: dim // 2 * seq_len + dim * (hp["kernel"] - 1),
)
class ContMix(nn.Module):
    """ContMix of OverLoCK (Lou & Yu, "OverLoCK: An Overview-first-Look-Closely-next ConvNet with
    Context-Mixing Dynamic Kernels", CVPR 2025), 1-D form of DynamicConvBlock's kernel generation.

    q = W_q x * (D/heads)^-1/2 and region keys k_s = W_k pool_s(x) (D/2 channels each, split into
    `heads` groups); the affinity of token t to the S region tokens, A_t (heads, S), is mapped by
    one linear map (S -> 5 + kernel, shared by the groups) plus a per-head relative position bias
    to the logits of two kernels, each softmaxed over its taps. The first half of the channels is
    convolved with the 5-tap kernel, the second half with the `kernel`-tap one (each group of
    D/(2 heads) channels shares its kernel), then a point-wise output map.
    1-D simplifications: the context is the input itself (OverLoCK feeds a separate top-down
    context stream), OverLoCK's 7x7 pooled grid becomes S = `regions` 1-D bins, BatchNorms after
    the query/key/output maps are left out (they couple a batch), and windows at the ends are
    zero-padded (NATTEN shifts them inward instead).
    Non-causal: adaptive average pooling of the whole sequence into S bins; centred kernels.
    Causal: position t pools its own prefix x[0..t] into S bins (the same bins as non-causal
    pooling applied to that prefix) and its kernels reach back: taps t-k+1..t. No step form.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 2, kernel: int = 7, regions: int = 4):
        super().__init__()
        problem = _validate(dim, {"heads": heads})
        if problem:
            raise ValueError(f"contmix: {problem}")
        self.causal, self.heads, self.kernel, self.regions = causal, heads, kernel, regions
        self.scale = (dim // heads) ** -0.5
        self.query = nn.Linear(dim, dim // 2, bias=False)
        self.key = nn.Linear(dim, dim // 2, bias=False)
        self.weight_proj = nn.Linear(regions, SMALL_KERNEL + kernel)
        self.rpb_small = nn.Parameter(torch.zeros(heads, SMALL_KERNEL))
        self.rpb_large = nn.Parameter(torch.zeros(heads, kernel))
        self.proj = nn.Linear(dim, dim)

    def region_keys(self, x: torch.Tensor) -> torch.Tensor:
        """Region keys: (B, 1, S, D/2) pooled over the sequence, or (B, L, S, D/2) per prefix (causal)."""
        k = self.key(x)  # (B, L, D/2); pooling is linear, so W_k before pooling is W_k after it
        if not self.causal:
            return F.adaptive_avg_pool1d(k.transpose(1, 2), self.regions).transpose(1, 2).unsqueeze(1)
        start, end = _prefix_region_index(x.shape[1], self.regions, x.device)  # (L, S)
        prefix = F.pad(k.cumsum(1), (0, 0, 1, 0))  # (B, L+1, D/2): prefix[i] = sum of k[:i]
        count = (end - start).to(k.dtype)[..., None]  # (L, S, 1)
        return (prefix[:, end] - prefix[:, start]) / count  # (B, L, S, D/2)

    def kernels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position kernels: small (B, L, heads, 5), large (B, L, heads, kernel), softmaxed."""
        b, length, _ = x.shape
        q = (self.query(x) * self.scale).view(b, length, self.heads, -1)  # (B, L, G, c)
        keys = self.region_keys(x)
        keys = keys.view(b, keys.shape[1], self.regions, self.heads, -1)  # (B, 1 or L, S, G, c)
        affinity = torch.einsum("blgc,blsgc->blgs", q, keys.expand(b, length, -1, -1, -1))  # (B, L, G, S)
        small, large = self.weight_proj(affinity).split([SMALL_KERNEL, self.kernel], dim=-1)
        return (small + self.rpb_small).softmax(-1), (large + self.rpb_large).softmax(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        b, length, dim = x.shape
        w_small, w_large = self.kernels(x)
        v_small, v_large = x.view(b, length, 2, self.heads, dim // (2 * self.heads)).unbind(2)  # (B, L, G, c)
        y_small = torch.einsum("blgck,blgk->blgc", _taps(v_small, SMALL_KERNEL, self.causal), w_small)
        y_large = torch.einsum("blgck,blgk->blgc", _taps(v_large, self.kernel, self.causal), w_large)
        return self.proj(torch.cat([y_small.flatten(2), y_large.flatten(2)], dim=-1))
