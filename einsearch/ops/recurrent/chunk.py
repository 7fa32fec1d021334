"""Chunked scans shared by the recurrent (linear-attention / delta-rule) primitives.

Shapes: q, k (B, H, L, dk); v (B, H, L, dv); state S (B, H, dk, dv); outputs o_t = S_t^T q_t.
Each scan pads L to a multiple of the chunk with "do nothing" steps (k = v = 0, decay 1), computes
everything inside a chunk with matrix products, and carries S across chunks (a loop over chunks,
never over positions). All decay factors that are exponentiated are differences of cumulative log
decays taken in the direction that makes them <= 1, so nothing overflows in float32 (see
`gated_scan` for the one place where a bounded factor > 1 remains).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# gated_scan factorises decays over sub-blocks of at most this many steps ...
SUB_BLOCK = 16
# ... so it needs log decays >= MIN_LOG_DECAY per step: exp(16 * 5) = e^80 is far from fp32 overflow.
MIN_LOG_DECAY = -5.0
# delta_scan inverts chunks of at most this size by a matmul product, larger ones by a triangular solve
PRODUCT_INVERSE_MAX = 16


def _to_chunks(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """(B, H, L, ...) -> (B, H, n, chunk, ...), zero-padded at the end."""
    length = x.shape[2]
    n = math.ceil(length / chunk)
    pad = n * chunk - length
    if pad:
        widths = [0, 0] * (x.dim() - 3) + [0, pad]
        x = F.pad(x, widths)
    return x.view(*x.shape[:2], n, chunk, *x.shape[3:])


def _from_chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, n, chunk, d) -> (B, H, L, d)."""
    return x.flatten(2, 3)[:, :, :length]


def _zero_state(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return v.new_zeros(v.shape[0], v.shape[1], q.shape[-1], v.shape[-1])


def _decay_matrix(b: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """exp(b_i - b_j) for j <= i (j < i if strict), else 0: b (..., C) -> (..., C, C)."""
    size = b.shape[-1]
    keep = torch.ones(size, size, dtype=torch.bool, device=b.device).tril(-1 if strict else 0)
    diff = b[..., :, None] - b[..., None, :]
    return torch.exp(diff.masked_fill(~keep, float("-inf")))


def scalar_scan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor | None,
                chunk: int, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """S_t = exp(log_decay_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t, decay a scalar per head and step.

    q, k (B, H, L, dk), or (B, 1, L, dk) when all heads share them (Mamba-2's single group of B, C:
    their products are then formed once, not per head); v (B, H, L, dv).
    log_decay (B, H, L) <= 0, or (1, H, L) when it does not depend on the example (RetNet: the decay
    factors are then built once for the batch), or None for no decay (plain linear attention: prefix
    sums, no loop).
    Returns o (B, H, L, dv) and the final state (B, H, dk, dv).
    """
    length = q.shape[2]
    s0 = _zero_state(q, v) if state is None else state
    qc, kc, vc = (_to_chunks(t, chunk) for t in (q, k, v))  # (B, H or 1, n, C, d)
    scores = qc @ kc.transpose(-1, -2)  # (B, H or 1, n, C, C)
    shared = qc.shape[1] == 1 and vc.shape[1] > 1

    def keys_times(values: torch.Tensor) -> torch.Tensor:  # sum_j k_j values_j^T: (B, H, n, dk, dv)
        if shared:  # one batched product over (B, n) with the heads folded into the columns
            return torch.einsum("bnck,bhncv->bhnkv", kc[:, 0], values)
        return kc.transpose(-1, -2) @ values

    def queries_times(states: torch.Tensor) -> torch.Tensor:  # q_i^T S per chunk: (B, H, n, C, dv)
        return torch.einsum("bnck,bhnkv->bhncv", qc[:, 0], states) if shared else qc @ states

    if log_decay is None:
        intra = scores.tril() @ vc
        kv = keys_times(vc)  # each chunk's own sum of k v^T
        # state before each chunk: an exclusive prefix sum (cumsum - kv would leak later chunks' rounding)
        states = s0.unsqueeze(2) + F.pad(kv.cumsum(2)[:, :, :-1], (0, 0, 0, 0, 1, 0))  # (B, H, n, dk, dv)
        return _from_chunks(intra + queries_times(states), length), s0 + kv.sum(2)
    b = _to_chunks(log_decay, chunk).cumsum(-1)  # (B, H, n, C): cumulative log decay inside the chunk
    intra = (scores * _decay_matrix(b)) @ vc
    total = b[..., -1:]  # (B, H, n, 1)
    kv = keys_times(vc * torch.exp(total - b).unsqueeze(-1))  # keys decayed to the chunk end
    states, s = [], s0
    for kv_c, g_c in zip(kv.unbind(2), torch.exp(total).unsqueeze(-1).unbind(2)):
        states.append(s)
        s = torch.addcmul(kv_c, g_c, s)
    inter = queries_times(torch.stack(states, 2)) * torch.exp(b).unsqueeze(-1)
    return _from_chunks(intra + inter, length), s


def _gated_intra(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Causal intra-chunk scores sum_d q_id k_jd exp(b_id - b_jd) (j <= i): (..., C, dk) -> (..., C, C).

    Sub-blocks of s steps: across blocks (key block J before query block I) the decay splits into
    three factors, each <= 1: exp(b_i - b_startI), exp(b_startI - b_endJ), exp(b_endJ - b_j). Within
    a block it splits about the block start; the key factor exp(b_start - b_j) <= e^(s |MIN_LOG_DECAY|).
    """
    size, dk = q.shape[-2], q.shape[-1]
    s = min(SUB_BLOCK, size)
    m = size // s
    qs, ks, bs = (t.view(*t.shape[:-2], m, s, dk) for t in (q, k, b))  # (..., m, s, dk)
    b_end = bs[..., -1, :]  # (..., m, dk): cumulative decay at each block's last step
    b_start = torch.cat([torch.zeros_like(b_end[..., :1, :]), b_end[..., :-1, :]], dim=-2)
    q_in = qs * torch.exp(bs - b_start.unsqueeze(-2))
    k_diag = ks * torch.exp(b_start.unsqueeze(-2) - bs)
    diag = (q_in @ k_diag.transpose(-1, -2)).tril()  # (..., m, s, s)
    eye = torch.eye(m, dtype=q.dtype, device=q.device)
    scores = torch.einsum("...Iij,IJ->...IiJj", diag, eye)  # block diagonal, (..., m, s, m, s)
    if m > 1:
        k_out = ks * torch.exp(b_end.unsqueeze(-2) - bs)
        later = torch.ones(m, m, dtype=torch.bool, device=q.device).tril(-1)  # I > J
        gap = b_start.unsqueeze(-2) - b_end.unsqueeze(-3)  # (..., I, J, dk)
        gap = torch.exp(gap.masked_fill(~later[..., None], float("-inf")))
        q_gap = q_in.unsqueeze(-3) * gap.unsqueeze(-2)  # (..., I, J, s, dk)
        off = q_gap @ k_out.unsqueeze(-4).transpose(-1, -2)  # (..., I, J, s, s)
        scores = scores + off.transpose(-3, -2)
    return scores.reshape(*q.shape[:-2], size, size)


def gated_scan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_alpha: torch.Tensor,
               chunk: int, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """GLA recurrence S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t (alpha per key channel).

    log_alpha (B, H, L, dk) must lie in [MIN_LOG_DECAY, 0] (callers clamp). Returns o (B, H, L, dv)
    and the final state (B, H, dk, dv).
    """
    length = q.shape[2]
    s0 = _zero_state(q, v) if state is None else state
    qc, kc, vc = (_to_chunks(t, chunk) for t in (q, k, v))
    b = _to_chunks(log_alpha, chunk).cumsum(-2)  # (B, H, n, C, dk)
    total = b[..., -1:, :]  # (B, H, n, 1, dk)
    q_dec = qc * torch.exp(b)  # <= |q|
    if chunk <= SUB_BLOCK:  # one sub-block: factor about the chunk start, exp(-b) <= e^(C |MIN_LOG_DECAY|)
        k_inv = kc * torch.exp(-b)
        intra = (q_dec @ k_inv.transpose(-1, -2)).tril() @ vc
    else:
        intra = _gated_intra(qc, kc, b) @ vc
    kv = (kc * torch.exp(total - b)).transpose(-1, -2) @ vc  # (B, H, n, dk, dv): each chunk's keys decayed to its end
    states, s = [], s0
    for kv_c, g_c in zip(kv.unbind(2), torch.exp(total).transpose(-1, -2).unbind(2)):
        states.append(s)
        s = torch.addcmul(kv_c, g_c, s)  # diag(alpha over the chunk) S + kv
    inter = q_dec @ torch.stack(states, 2)
    return _from_chunks(intra + inter, length), s


def _unit_lower_inverse(a: torch.Tensor) -> torch.Tensor:
    """(I + A)^-1 for strictly lower-triangular A (..., C, C), by the exact finite product
    (I - A)(I + A^2)(I + A^4)... (A is nilpotent: A^C = 0): 2 log2(C) batched matmuls, much
    cheaper on a CPU than a batched triangular solve over many small matrices."""
    size = a.shape[-1]
    shape = a.shape
    a = a.reshape(-1, size, size)
    inv = torch.eye(size, dtype=a.dtype, device=a.device) - a
    power, p = a, 1
    while 2 * p < size:
        power = power @ power  # A^(2p)
        inv = torch.baddbmm(inv, inv, power)  # inv (I + A^(2p))
        p *= 2
    return inv.view(shape)


def delta_scan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
               log_decay: torch.Tensor | None, chunk: int,
               state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Gated) delta rule S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = S_t^T q_t.

    beta (B, H, L); log_decay = log a_t (B, H, L) <= 0, or None for a = 1 (DeltaNet).
    Per chunk (UT transform): with g_i = prod_{s<=i} a_s inside the chunk, the new values
    W = (I + strict_tril(diag(beta) (K K^T o G)))^-1 (diag(beta) V - diag(beta g) K S_0), G_ij = g_i/g_j,
    turn the chunk into a decayed linear attention with values W. The triangular solves run for all
    chunks at once (for C <= 16 an explicit inverse by a product of log2(C) factors, see
    _unit_lower_inverse; else one batched unit-triangular solve);
    the loop over chunks carries only the state (two fused matmul-adds per chunk); the outputs
    Q_dec S_0 + (Q K^T o G) W of all chunks are then two batched products.
    """
    b_, h_, length, dk = q.shape
    dv = v.shape[-1]
    s0 = _zero_state(q, v) if state is None else state
    qc, kc, vc = (_to_chunks(t, chunk).flatten(0, 1) for t in (q, k, v))  # (B*H, n, C, d)
    betac = _to_chunks(beta, chunk).flatten(0, 1).unsqueeze(-1)  # (B*H, n, C, 1)
    kt = kc.transpose(-1, -2)
    if log_decay is None:
        lower = (betac * (kc @ kt)).tril(-1)
        scores = (qc @ kt).tril()
        rhs = torch.cat([betac * vc, betac * kc], dim=-1)
        q_dec, k_dec, chunk_decay = qc, kc, None
    else:
        b = _to_chunks(log_decay, chunk).flatten(0, 1).cumsum(-1)  # (B*H, n, C)
        decay = _decay_matrix(b)  # exp(b_i - b_j) <= 1 for j <= i, else 0
        lower = ((betac * (kc @ kt)) * decay).tril(-1)
        scores = (qc @ kt) * decay
        g = torch.exp(b).unsqueeze(-1)  # (B*H, n, C, 1), <= 1
        rhs = torch.cat([betac * vc, (betac * g) * kc], dim=-1)
        q_dec = qc * g
        total = b[..., -1:]  # (B*H, n, 1)
        k_dec = kc * torch.exp(total - b).unsqueeze(-1)
        chunk_decay = torch.exp(total).unsqueeze(-1)  # (B*H, n, 1, 1)
    if chunk <= PRODUCT_INVERSE_MAX:
        solved = _unit_lower_inverse(lower) @ rhs
    else:
        solved = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
    u, wk = solved.split([dv, dk], dim=-1)  # (B*H, n, C, dv), (B*H, n, C, dk)
    k_dec_t = k_dec.transpose(-1, -2)  # (B*H, n, dk, C)
    s = s0.flatten(0, 1)  # (B*H, dk, dv)
    states, ws = [], []
    decays = [None] * u.shape[1] if chunk_decay is None else chunk_decay.unbind(1)
    for u_c, wk_c, kd_c, e_c in zip(u.unbind(1), wk.unbind(1), k_dec_t.unbind(1), decays):
        states.append(s)
        w = torch.baddbmm(u_c, wk_c, s, alpha=-1)  # u - wk S: (B*H, C, dv)
        ws.append(w)
        s = torch.baddbmm(s if e_c is None else e_c * s, kd_c, w)
    out = q_dec @ torch.stack(states, 1) + scores @ torch.stack(ws, 1)  # (B*H, n, C, dv)
    out = out.view(b_, h_, *out.shape[1:])
    return _from_chunks(out, length), s.view(b_, h_, dk, dv)
