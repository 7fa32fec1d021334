/* Mamba-1's selective scan on the CPU: forward and backward over whole sequences, no temporaries.
 *
 * h_t = exp(x_t) h_{t-1} + dt_t u_t B_t,  x_t = max(dt_t A, floor),  y_t[d] = sum_n C_t[n] h_t[d, n],
 * and, as in the reference CUDA kernel, Mamba's skip and gate fused in: out_t = (y_t + Dk u_t) silu(z_t),
 * each optional (a NULL Dk or z leaves it out).
 *
 * Built at first use by einsearch/ops/cpu_kernels.py with -DREAL=float or -DREAL=double and called
 * through ctypes, which releases the GIL. All arrays are contiguous and row-major:
 *   u, dt, z, out, gout, gu, gdt, gz (B, L, D);  A (D, N);  Dk (D);  Bm, Cm (B, L, N);
 *   h0, hL, ghL, gh0 (B, D, N);
 *   starts (B, ceil(L / every), D, N): the state before every `every`-th position, which the
 *   forward saves and the backward recomputes each span from (memory: 1/every of the states).
 * Work is split over (batch, block of DB channels) units; inside a unit the DB channels are the
 * vector lanes of every loop, so the state is held as (N, DB) and no loop needs a horizontal sum
 * except the two sums over channels of the backward (grad B and grad C).
 */
#include "kernel_common.h"

#define DB 64

typedef struct {
    const REAL *u, *dt, *A, *Bm, *Cm, *Dk, *z, *h0, *gout, *ghL;
    REAL *out, *hL, *starts, *gu, *gdt, *gz, *gA, *gB, *gC, *gD, *gh0; /* gA, gB, gC, gD: one copy per thread */
    int64_t B, L, D, N, every;
    REAL floor;
} Args;

/* d0 .. d0 + DB - 1 of a row, zero beyond D (or everywhere for a NULL row) */
static inline void load_lanes(REAL *dst, const REAL *row, int64_t d0, int64_t D) {
    if (row && d0 + DB <= D) memcpy(dst, row + d0, DB * sizeof(REAL));
    else for (int j = 0; j < DB; j++) dst[j] = row && d0 + j < D ? row[d0 + j] : 0;
}

static inline void store_lanes(REAL *row, const REAL *src, int64_t d0, int64_t D) {
    if (d0 + DB <= D) memcpy(row + d0, src, DB * sizeof(REAL));
    else for (int j = 0; j < DB && d0 + j < D; j++) row[d0 + j] = src[j];
}

/* (D, N) or (B, D, N) block rows d0.. <-> (N, DB) lanes */
static void load_state(REAL *dst, const REAL *src, int64_t d0, int64_t D, int64_t N) {
    for (int64_t n = 0; n < N; n++)
        for (int j = 0; j < DB; j++) dst[n * DB + j] = d0 + j < D ? src[(d0 + j) * N + n] : 0;
}

static void store_state(REAL *dst, const REAL *src, int64_t d0, int64_t D, int64_t N, int add) {
    for (int64_t n = 0; n < N; n++)
        for (int j = 0; j < DB && d0 + j < D; j++) {
            REAL *out = &dst[(d0 + j) * N + n];
            *out = add ? *out + src[n * DB + j] : src[n * DB + j];
        }
}

/* One step of the recurrence for one unit: next = decay prev + dt u B, states (N, DB); next may be
 * prev (in place) or another buffer (the backward keeps a span's states). The decays (and their
 * gradient masks, 0 where the floor holds) go to e and m when given; returns y_t in yv. */
static inline void step(const REAL *prev, REAL *next, const REAL *restrict At, const REAL *restrict dtv,
                        const REAL *restrict uv, const REAL *restrict bt, const REAL *restrict ct, int64_t N,
                        REAL floor_, REAL *restrict e, REAL *restrict m, REAL *restrict yv) {
    REAL dtu[DB];
    for (int j = 0; j < DB; j++) { dtu[j] = dtv[j] * uv[j]; yv[j] = 0; }
    for (int64_t n = 0; n < N; n++) {
        const REAL bn = bt[n], cn = ct[n];
#pragma omp simd
        for (int j = 0; j < DB; j++) {
            REAL x = dtv[j] * At[n * DB + j];
            REAL keep = x >= floor_ ? (REAL)1 : (REAL)0;
            REAL decay = exp_real(x >= floor_ ? x : floor_);
            REAL hv = decay * prev[n * DB + j] + dtu[j] * bn;
            next[n * DB + j] = hv;
            yv[j] += cn * hv;
            if (e) { e[n * DB + j] = decay; m[n * DB + j] = keep * decay; }
        }
    }
}

/* out = (y + Dk u) silu(z), in place of y (silu(z) only where gated) */
static inline void gate(REAL *restrict y, const REAL *restrict Dv, const REAL *restrict uv,
                        const REAL *restrict zv, int gated) {
#pragma omp simd
    for (int j = 0; j < DB; j++) {
        REAL pre = y[j] + Dv[j] * uv[j];
        y[j] = gated ? pre * zv[j] * sigmoid_real(zv[j]) : pre;
    }
}

/* From grad out in g: grad z (where gated) to gz, grad Dk added to gD, grad u through the skip to
 * gu; g becomes grad y. y is the scan's output before the gate. (Not inlined: inlined, gcc 12 no
 * longer vectorises its loop.) */
static __attribute__((noinline)) void gate_backward(REAL *restrict g, const REAL *restrict y, const REAL *restrict Dv,
                                 const REAL *restrict uv, const REAL *restrict zv, int gated, REAL *restrict gz,
                                 REAL *restrict gD, REAL *restrict gu) {
    if (gated) {
#pragma omp simd
        for (int j = 0; j < DB; j++) {
            REAL zj = zv[j], sig = sigmoid_real(zj), gj = g[j];
            gz[j] = gj * (y[j] + Dv[j] * uv[j]) * sig * (1 + zj * (1 - sig));
            g[j] = gj * zj * sig;
        }
    }
#pragma omp simd
    for (int j = 0; j < DB; j++) {
        gD[j] += g[j] * uv[j];
        gu[j] = g[j] * Dv[j];
    }
}

static void forward_unit(const Args *a, int64_t b, int64_t d0, REAL *ws) {
    const int64_t L = a->L, D = a->D, N = a->N, spans = (L + a->every - 1) / a->every;
    REAL *h = ws, *At = ws + N * DB, dtv[DB], uv[DB], yv[DB], zv[DB], Dv[DB];
    load_state(At, a->A, d0, D, N);
    load_lanes(Dv, a->Dk, d0, D);
    load_state(h, a->h0 + b * D * N, d0, D, N);
    for (int64_t t = 0; t < L; t++) {
        if (a->starts && t % a->every == 0)
            store_state(a->starts + (b * spans + t / a->every) * D * N, h, d0, D, N, 0);
        const int64_t row = b * L + t;
        load_lanes(dtv, a->dt + row * D, d0, D);
        load_lanes(uv, a->u + row * D, d0, D);
        step(h, h, At, dtv, uv, a->Bm + row * N, a->Cm + row * N, N, a->floor, NULL, NULL, yv);
        if (a->Dk || a->z) {
            load_lanes(zv, a->z ? a->z + row * D : NULL, d0, D);
            gate(yv, Dv, uv, zv, a->z != NULL);
        }
        store_lanes(a->out + row * D, yv, d0, D);
    }
    store_state(a->hL + b * D * N, h, d0, D, N, 0);
}

/* The reverse recurrence G_t = gy_t C_t + exp(x_{t+1}) G_{t+1}, span by span from the last, with
 * each span's states recomputed from its saved start. Per step: grad C_t = sum_d gy_t h_t,
 * grad (dt u)_t = sum_n G_t B_t, grad B_t = sum_d G_t (dt u)_t, grad x_t = G_t exp(x_t) h_{t-1}
 * (0 under the floor), which reaches dt through A and A through dt. */
static void backward_unit(const Args *a, int thread, int64_t b, int64_t d0, REAL *ws) {
    const int64_t L = a->L, D = a->D, N = a->N, every = a->every, spans = (L + every - 1) / every;
    const int64_t S = N * DB;
    REAL *g = ws, *At = g + S, *gAt = At + S, *hs = gAt + S, *es = hs + (every + 1) * S, *ms = es + every * S;
    REAL *ys = ms + every * S; /* the span's y_t (every, DB), for the gate's backward */
    REAL *gA = a->gA + thread * D * N, *gB = a->gB + thread * a->B * L * N, *gC = a->gC + thread * a->B * L * N;
    REAL dtv[DB], uv[DB], gyv[DB], yv[DB], zv[DB], Dv[DB], gzv[DB], gDv[DB] = {0}, gskip[DB] = {0};
    REAL dtu[DB], gdtu[DB], gx_dt[DB];
    load_state(At, a->A, d0, D, N);
    load_lanes(Dv, a->Dk, d0, D);
    load_state(g, a->ghL + b * D * N, d0, D, N);
    memset(gAt, 0, S * sizeof(REAL));
    for (int64_t k = spans - 1; k >= 0; k--) {
        const int64_t t0 = k * every, t1 = t0 + every < L ? t0 + every : L;
        load_state(hs, a->starts + (b * spans + k) * D * N, d0, D, N);
        for (int64_t t = t0; t < t1; t++) {
            const int64_t row = b * L + t, i = t - t0;
            load_lanes(dtv, a->dt + row * D, d0, D);
            load_lanes(uv, a->u + row * D, d0, D);
            step(hs + i * S, hs + (i + 1) * S, At, dtv, uv, a->Bm + row * N, a->Cm + row * N, N, a->floor,
                 es + i * S, ms + i * S, ys + i * DB);
        }
        for (int64_t t = t1 - 1; t >= t0; t--) {
            const int64_t row = b * L + t, i = t - t0;
            const REAL *h_now = hs + (i + 1) * S, *h_prev = hs + i * S, *e = es + i * S, *m = ms + i * S;
            const REAL *bt = a->Bm + row * N, *ct = a->Cm + row * N;
            load_lanes(dtv, a->dt + row * D, d0, D);
            load_lanes(uv, a->u + row * D, d0, D);
            load_lanes(gyv, a->gout + row * D, d0, D);
            if (a->Dk || a->z) {
                load_lanes(zv, a->z ? a->z + row * D : NULL, d0, D);
                gate_backward(gyv, ys + i * DB, Dv, uv, zv, a->z != NULL, gzv, gDv, gskip);
                if (a->z) store_lanes(a->gz + row * D, gzv, d0, D);
            }
            for (int j = 0; j < DB; j++) { dtu[j] = dtv[j] * uv[j]; gdtu[j] = 0; gx_dt[j] = 0; }
            for (int64_t n = 0; n < N; n++) {
                const REAL bn = bt[n], cn = ct[n];
                REAL sum_c = 0, sum_b = 0;
#pragma omp simd reduction(+ : sum_c, sum_b)
                for (int j = 0; j < DB; j++) {
                    const int64_t q = n * DB + j;
                    REAL gq = g[q] + gyv[j] * cn;
                    REAL gx = gq * h_prev[q] * m[q];
                    sum_c += gyv[j] * h_now[q];
                    sum_b += gq * dtu[j];
                    gdtu[j] += gq * bn;
                    gx_dt[j] += gx * At[q];
                    gAt[q] += gx * dtv[j];
                    g[q] = gq * e[q];
                }
                gC[row * N + n] += sum_c;
                gB[row * N + n] += sum_b;
            }
            for (int j = 0; j < DB; j++) { yv[j] = gdtu[j] * dtv[j] + gskip[j]; gx_dt[j] += gdtu[j] * uv[j]; }
            store_lanes(a->gu + row * D, yv, d0, D);
            store_lanes(a->gdt + row * D, gx_dt, d0, D);
        }
    }
    store_state(a->gh0 + b * D * N, g, d0, D, N, 0);
    store_state(gA, gAt, d0, D, N, 1);
    if (a->gD)
        for (int j = 0; j < DB && d0 + j < D; j++) a->gD[thread * D + d0 + j] += gDv[j];
}

/* Piece `index` of `parts`: a contiguous range of the (batch, channel block) units. */
static int run_units(const Args *a, int index, int parts, int backward) {
    const int64_t blocks = (a->D + DB - 1) / DB, units = a->B * blocks;
    const int64_t S = a->N * DB, size = backward ? (3 + 3 * a->every + 1) * S + a->every * DB : 2 * S;
    REAL *ws = malloc(size * sizeof(REAL));
    if (!ws) return 1;
    for (int64_t unit = units * index / parts; unit < units * (index + 1) / parts; unit++) {
        if (backward) backward_unit(a, index, unit / blocks, unit % blocks * DB, ws);
        else forward_unit(a, unit / blocks, unit % blocks * DB, ws);
    }
    free(ws);
    return 0;
}

static int forward_part(const void *a, int index, int parts) { return run_units(a, index, parts, 0); }
static int backward_part(const void *a, int index, int parts) { return run_units(a, index, parts, 1); }

int scan_forward(const REAL *u, const REAL *dt, const REAL *A, const REAL *Bm, const REAL *Cm, const REAL *Dk,
                 const REAL *z, const REAL *h0, REAL *out, REAL *hL, REAL *starts, int64_t B, int64_t L, int64_t D,
                 int64_t N, int64_t every, double floor_, int threads) {
    Args a = {.u = u, .dt = dt, .A = A, .Bm = Bm, .Cm = Cm, .Dk = Dk, .z = z, .h0 = h0, .out = out, .hL = hL,
              .starts = starts, .B = B, .L = L, .D = D, .N = N, .every = every, .floor = (REAL)floor_};
    return run_parts(forward_part, &a, threads);
}

/* gA, gB, gC, gD: zeroed per-thread copies (threads, D, N), (threads, B, L, N) and (threads, D);
 * the caller sums them. gz and gD are only written where z and Dk are given. */
int scan_backward(const REAL *u, const REAL *dt, const REAL *A, const REAL *Bm, const REAL *Cm, const REAL *Dk,
                  const REAL *z, const REAL *starts, const REAL *gout, const REAL *ghL, REAL *gu, REAL *gdt,
                  REAL *gA, REAL *gB, REAL *gC, REAL *gD, REAL *gz, REAL *gh0, int64_t B, int64_t L, int64_t D,
                  int64_t N, int64_t every, double floor_, int threads) {
    Args a = {.u = u, .dt = dt, .A = A, .Bm = Bm, .Cm = Cm, .Dk = Dk, .z = z, .starts = (REAL *)starts, .gout = gout,
              .ghL = ghL, .gu = gu, .gdt = gdt, .gA = gA, .gB = gB, .gC = gC, .gD = gD, .gz = gz, .gh0 = gh0,
              .B = B, .L = L, .D = D, .N = N, .every = every, .floor = (REAL)floor_};
    return run_parts(backward_part, &a, threads);
}
