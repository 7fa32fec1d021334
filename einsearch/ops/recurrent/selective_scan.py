"""Mamba-1's selective scan (S6, Gu & Dao, 2023) as a custom autograd Function that recomputes.

h_t = exp(a_t) h_{t-1} + dt_t u_t B_t per channel d and state n, a_t = max(dt_t A, floor),
y_t = sum_n C_t[n] h_t[d, n]: a causal recurrence (y_t depends on positions <= t only). Like the
reference CUDA kernel (selective_scan_fwd/bwd, which saves its inputs and the state at chunk
boundaries and recomputes the rest in the backward pass), this works in chunks of `chunk`
positions: the forward keeps only the state at each chunk start (1/chunk of the state history);
the backward walks the chunks in reverse, recomputes a chunk's states from its start state and
runs the reverse recurrence of the state gradient G_t = gy_t C_t + exp(a_{t+1}) G_{t+1}.

Layout: time-major with the state as (N, Di), i.e. (c, B, N, Di) per chunk, so that every
contraction is a fast batched product. Inside a chunk there is no loop over positions: with
p_t = prod_{s<=t} exp(a_s), h_t = p_t (h + sum_{s<=t} b_s / p_s), and the gradient runs backwards as
G_t = (1 / p_t) sum_{s>=t} p_s g_s; the cumulative sums over the chunk's c positions are single
(c, c) @ (c, B N Di) products with a triangular matrix of ones. The floor bounds
1 / p_s <= e^(chunk |MIN_LOG_DECAY|) <= e^64 (the chunk bound of ssm_mamba), finite in float32.
Decays are exp2(a log2(e)) (about 3x faster than exp on a CPU). The floor costs nothing where it is
idle: one reduction finds the chunks where it can act, and elsewhere the backward skips its mask.
"""
from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

LOG2E = 1.0 / math.log(2.0)
# Mamba's per-step log decay floor: exp(-8) = 3.4e-4, a step keeps at least that share of the state
MIN_LOG_DECAY = -8.0


def _floor_hits(dt: torch.Tensor, a2: torch.Tensor, floor2: float, chunk: int) -> list[bool]:
    """Per chunk: does the floor clamp any dt A2 there? One host sync. Exact: rounding is monotonic,
    so the least fl(dt A2[n, d]) over a batch and n is one of the four products of the extremes."""
    dt_lo, dt_hi = dt.amin(0), dt.amax(0)  # (L, Di); torch.aminmax is much slower on CPU
    a_lo, a_hi = a2.amin(0), a2.amax(0)  # (Di,)
    least = torch.stack([dt_lo * a_lo, dt_lo * a_hi, dt_hi * a_lo, dt_hi * a_hi]).amin(0)  # (L, Di)
    hit = (least < floor2).any(1)
    return torch.cat([hit, hit.new_zeros(-len(hit) % chunk)]).view(-1, chunk).any(1).tolist()


def _time_major(chunk: int, *tensors: torch.Tensor, dim: int):
    """Per chunk of positions, time-major views (c, B, ...) of batch-major (B, L, ...) tensors, with
    a unit dimension inserted at `dim` (for broadcasting over the (N, Di) state)."""
    return [t.transpose(0, 1).unsqueeze(dim).split(chunk) for t in tensors]


def _rows_of(c_t: torch.Tensor, chunk: int) -> tuple[torch.Tensor, ...]:
    """(L, B, N) contiguous -> per chunk (c B, 1, N), the batched row vectors of bmm."""
    return c_t.view(-1, 1, c_t.shape[-1]).split(chunk * c_t.shape[1])


def _triangles(chunk: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, c) lower- and upper-triangular matrices of ones: inclusive prefix and suffix sums."""
    lower = torch.ones(chunk, chunk, dtype=like.dtype, device=like.device).tril()
    return lower, lower.t().contiguous()


def _chunk_states(dt_c: torch.Tensor, u_c: torch.Tensor, b_c: torch.Tensor, a2: torch.Tensor, floor2: float,
                  state: torch.Tensor, lower: torch.Tensor, work: tuple[torch.Tensor, ...] | None = None,
                  clamp: bool = True):
    """One chunk of the recurrence h_t = exp(a_t) h_{t-1} + b_t, b_t = dt_t u_t B_t, without a loop.

    dt_c, u_c (c, B, 1, Di); b_c (c, B, N, 1); a2 = A log2(e) (N, Di); state (B, N, Di) before the
    chunk; lower (c, c) ones on and below the diagonal. Returns la = max(dt A, floor) log2(e), the
    cumulative decays p_t = 2^(sum_{s<=t} la_s) (c, B, N, Di), dt u (c, B, 1, Di), b (c, B, N, Di)
    and the states after each step h = p (state + cumsum(b / p)) (c, B, N, Di). With `work`,
    buffers (la, p, dt u, b, scratch, h) of those shapes, it writes them in place (no autograd);
    without, plain ops that autograd and torch.export can trace. clamp=False skips an idle floor.
    """
    c = dt_c.shape[0]
    la, p, dtu, inp, scratch, hs = work or (None,) * 6
    la = torch.mul(dt_c, a2, out=la)
    if clamp:
        la = torch.clamp(la, min=floor2, out=la if work else None)
    cum = torch.mm(lower, la.reshape(c, -1), out=None if work is None else p.view(c, -1))
    p = torch.exp2(cum, out=cum if work else None).view(la.shape)  # in [e^(c floor), 1]
    dtu = torch.mul(dt_c, u_c, out=dtu)
    inp = torch.mul(dtu, b_c, out=inp)
    ratio = torch.div(inp, p, out=scratch)
    # state + cumsum(b / p) in one product-add (the state row broadcasts over the c positions)
    sums = torch.addmm(state.reshape(1, -1), lower, ratio.reshape(c, -1),
                       out=None if work is None else hs.view(c, -1)).view(la.shape)
    hs = sums.mul_(p) if work else sums * p
    return la, p, dtu, inp, hs


def scan_forward(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                 h: torch.Tensor, chunk: int, min_log_decay: float, inplace: bool = False,
                 save_starts: bool = False):
    """The forward pass. Shapes as in selective_scan.

    inplace: in reused buffers, without autograd (else plain ops, which autograd and torch.export
    can trace). Returns y (B, L, Di), the final state (B, Di, N) and, with save_starts (implies
    inplace), the state before each chunk (n_chunks, B, N, Di) (state as (N, Di)) and which chunks
    the floor touches (a host sync), else None, None."""
    batch, _, di = u.shape
    n = A.shape[-1]
    a2, floor2 = A.t().contiguous() * LOG2E, min_log_decay * LOG2E  # (N, Di)
    u_c, dt_c = _time_major(chunk, u, dt, dim=2)  # (c, B, 1, Di)
    b_c, = _time_major(chunk, B, dim=3)  # (c, B, N, 1)
    c_c = _rows_of(C.transpose(0, 1).contiguous(), chunk)  # (c B, 1, N)
    size = len(u_c[0])
    lower, _ = _triangles(size, u)
    full = None
    if inplace or save_starts:  # buffers (la, p, dt u, b, scratch, h) of _chunk_states
        la_w, p_w, inp_w, scratch_w, hs_w = u.new_empty(5, size, batch, n, di)
        full = (la_w, p_w, u.new_empty(size, batch, 1, di), inp_w, scratch_w, hs_w)
    starts = u.new_empty(len(u_c), batch, n, di) if save_starts else None
    hits = _floor_hits(dt, a2, floor2, chunk) if save_starts else [True] * len(u_c)
    state, ys = h.transpose(1, 2), []  # state (B, N, Di)
    for k in range(len(u_c)):
        c = len(u_c[k])
        if save_starts:
            state = starts[k].copy_(state)
        elif full and k:
            state = state.clone()  # the buffers hold it: copied before they are overwritten
        hs = _chunk_states(dt_c[k], u_c[k], b_c[k], a2, floor2, state, lower[:c, :c],
                           full and (full if c == size else tuple(w[:c] for w in full)), clamp=hits[k])[4]
        state = hs[-1]
        ys.append(torch.bmm(c_c[k], hs.view(-1, n, di)).view(c, batch, di))  # y_t[d] = sum_n C_t[n] h_t[n, d]
    return torch.cat(ys).transpose(0, 1).contiguous(), state.transpose(1, 2).clone(), starts, \
        hits if save_starts else None


def scan_backward(gy: torch.Tensor, gh: torch.Tensor, u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
                  B: torch.Tensor, C: torch.Tensor, starts: torch.Tensor, hits: list[bool], chunk: int,
                  min_log_decay: float):
    """Gradients of (u, dt, A, B, C, h0) from gy (B, L, Di) and gh (B, Di, N).

    Per chunk, last to first, with K the gradient reaching the chunk's last state from later ones:
    G_last = g_last + K, G_t = g_t + exp(a_{t+1}) G_{t+1} with g_t = gy_t[d] C_t[n]; then
    grad a_t = G_t exp(a_t) h_{t-1} (zero where the floor holds), grad (dt u B)_t = G_t, and the
    chain rule to u, dt, A, B; grad C_t = sum_d gy_t h_t; the carry to the previous chunk (and
    grad h0 after the first chunk) is exp(a_first) G_first.
    """
    batch, _, di = u.shape
    n = A.shape[-1]
    a_t = A.t().contiguous()  # (N, Di)
    a2, floor2 = a_t * LOG2E, min_log_decay * LOG2E
    g_u, g_dt, g_b, g_c = torch.empty_like(u), torch.empty_like(dt), torch.empty_like(B), torch.empty_like(C)
    u_c, dt_c, gy_c, g_u_c, g_dt_c = _time_major(chunk, u, dt, gy, g_u, g_dt, dim=2)  # (c, B, 1, Di)
    g_b_c, g_c_c = _time_major(chunk, g_b, g_c, dim=2)  # (c, B, 1, N)
    b_c, c_c = _time_major(chunk, B, C, dim=3)  # (c, B, N, 1)
    b_rows = _rows_of(B.transpose(0, 1).contiguous(), chunk)  # (c B, 1, N)
    size = len(u_c[0])
    lower, upper = _triangles(size, u)
    la_w, p_w, inp_w, scratch_w, gs_w = u.new_empty(5, size, batch, n, di)
    hs_w = u.new_empty(size + 1, batch, n, di)  # the state before the chunk, then after each step
    dtu_w, gy_w, g_dtu_w, g_da_w = u.new_empty(4, size, batch, 1, di)
    g_b_w, g_c_w = u.new_empty(2, size * batch, 1, n)
    acc_a = u.new_zeros(size, batch, n, di)  # sum over chunks of grad a * dt
    carry, carry_next = gh.transpose(1, 2).contiguous(), u.new_empty(batch, n, di)
    for k in range(len(u_c) - 1, -1, -1):
        c = len(u_c[k])
        hs_w[0].copy_(starts[k])
        la, p, dtu, inp, hs = _chunk_states(
            dt_c[k], u_c[k], b_c[k], a2, floor2, hs_w[0], lower[:c, :c],
            (la_w[:c], p_w[:c], dtu_w[:c], inp_w[:c], scratch_w[:c], hs_w[1:c + 1]), clamp=hits[k])
        gy_k, g_dtu, g_da = gy_w[:c], g_dtu_w[:c], g_da_w[:c]
        # grad C_t[n] = sum_d gy_t[d] h_t[n, d]
        gy_k.copy_(gy_c[k])
        torch.bmm(gy_k.view(-1, 1, di), hs.view(-1, n, di).transpose(1, 2), out=g_c_w[:c * batch])
        g_c_c[k].copy_(g_c_w[:c * batch].view(c, batch, 1, n))
        # the state gradient G_t = g_t + exp(a_{t+1}) G_{t+1} = (1 / p_t) sum_{s>=t} p_s g_s, with
        # g_t = gy_t C_t, plus the carry from later chunks at the last position
        g = torch.mul(gy_k, c_c[k], out=scratch_w[:c])
        g[c - 1].add_(carry)
        g.mul_(p)
        gs = torch.mm(upper[:c, :c], g.view(c, -1), out=gs_w[:c].view(c, -1)).view(g.shape).div_(p)
        torch.mul(p[0], gs[0], out=carry_next)  # exp(a_first) G_first
        carry, carry_next = carry_next, carry
        ea = torch.exp2(la, out=inp)  # exp(a_t); b is no longer needed
        grad_a = ea.mul_(gs).mul_(hs_w[:c])  # grad a_t = G_t exp(a_t) h_{t-1}
        if hits[k]:  # no gradient where the floor holds: la - floor2 is 0 there, > 0 elsewhere
            grad_a.mul_(la.sub_(floor2).sign_())
        acc_a[:c].addcmul_(grad_a, dt_c[k])
        # grad of a_t through dt: sum_n grad_a A[n, d]
        torch.sum(torch.mul(grad_a, a_t, out=la), dim=2, keepdim=True, out=g_da)
        # grad (dt u)_t[d] = sum_n G_t B_t[n];  grad B_t[n] = sum_d G_t (dt u)_t[d]
        torch.bmm(b_rows[k], gs.view(-1, n, di), out=g_dtu.view(-1, 1, di))
        torch.bmm(dtu.view(-1, 1, di), gs.view(-1, n, di).transpose(1, 2), out=g_b_w[:c * batch])
        g_b_c[k].copy_(g_b_w[:c * batch].view(c, batch, 1, n))
        torch.mul(g_dtu, dt_c[k], out=g_u_c[k])
        torch.addcmul(g_da, g_dtu, u_c[k], out=g_dt_c[k])
    return g_u, g_dt, acc_a.sum((0, 1)).t(), g_b, g_c, carry.transpose(1, 2)


class SelectiveScan(torch.autograd.Function):
    """selective_scan with a recomputing backward: saves the inputs and the chunk-start states."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C, h, chunk: int, min_log_decay: float):
        y, last, starts, hits = scan_forward(u, dt, A, B, C, h, chunk, min_log_decay, inplace=True,
                                             save_starts=True)
        ctx.save_for_backward(u, dt, A, B, C, starts)
        ctx.hits, ctx.chunk, ctx.min_log_decay = hits, chunk, min_log_decay
        return y, last

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, gh):
        u, dt, A, B, C, starts = ctx.saved_tensors
        grads = scan_backward(gy, gh, u, dt, A, B, C, starts, ctx.hits, ctx.chunk, ctx.min_log_decay)
        return (*(g if need else None for g, need in zip(grads, ctx.needs_input_grad)), None, None)
