/* Depthwise 1-D convolution over positions with an optional SiLU, forward and backward: the short
 * convolutions of Mamba, Mamba-2, DeltaNet, H3, Hyena and the convolution mixers.
 *
 * out[b, t, c] = act(bias[c] + sum_i w[i, c] x[b, t - pad + i, c]) for t in [0, Lout), with x zero
 * outside [0, Lx) and act = SiLU or none. All arrays contiguous, row-major:
 *   x, gx (B, Lx, C);  out, gout (B, Lout, C);  w (k, C), the Conv1d weight transposed;  bias (C) or
 *   NULL;  gw (parts, k, C) and gbias (parts, C): zeroed copies per thread, summed by the caller.
 * One pass over memory each way (PyTorch's k shifted multiply-adds make k; their backward makes a
 * full-size gradient per tap). Work is split over (batch, block of CB channels) units; inside a unit
 * the channels are the vector lanes. The backward recomputes the pre-activation where act is SiLU.
 */
#include "kernel_common.h"

#define CB 64

typedef struct {
    const REAL *x, *w, *bias, *gout;
    REAL *out, *gx, *gw, *gbias;
    int64_t B, Lx, Lout, C, k, pad;
    int silu;
} Args;

/* The pre-activation of row t, channels c0 .. c0 + width - 1, into acc. */
static inline void conv_row(const Args *a, int64_t b, int64_t c0, int64_t width, int64_t t, REAL *restrict acc) {
    for (int64_t j = 0; j < width; j++) acc[j] = a->bias ? a->bias[c0 + j] : 0;
    for (int64_t i = 0; i < a->k; i++) {
        const int64_t s = t - a->pad + i;
        if (s < 0 || s >= a->Lx) continue;
        const REAL *restrict xs = a->x + (b * a->Lx + s) * a->C + c0, *restrict wi = a->w + i * a->C + c0;
#pragma omp simd
        for (int64_t j = 0; j < width; j++) acc[j] += wi[j] * xs[j];
    }
}

static int forward_part(const void *args, int index, int parts) {
    const Args *a = args;
    const int64_t blocks = (a->C + CB - 1) / CB, units = a->B * blocks;
    REAL acc[CB];
    for (int64_t unit = units * index / parts; unit < units * (index + 1) / parts; unit++) {
        const int64_t b = unit / blocks, c0 = unit % blocks * CB, width = a->C - c0 < CB ? a->C - c0 : CB;
        for (int64_t t = 0; t < a->Lout; t++) {
            conv_row(a, b, c0, width, t, acc);
            REAL *restrict out = a->out + (b * a->Lout + t) * a->C + c0;
            if (a->silu) {
#pragma omp simd
                for (int64_t j = 0; j < width; j++) out[j] = acc[j] * sigmoid_real(acc[j]);
            } else {
                memcpy(out, acc, width * sizeof(REAL));
            }
        }
    }
    return 0;
}

/* Per output row t: g = gout (times SiLU's derivative at the recomputed pre-activation);
 * grad bias += g; for each tap i, grad x[t - pad + i] += w[i] g and grad w[i] += g x[t - pad + i]. */
static int backward_part(const void *args, int index, int parts) {
    const Args *a = args;
    const int64_t blocks = (a->C + CB - 1) / CB, units = a->B * blocks, C = a->C;
    REAL *gw = a->gw + index * a->k * C, *gbias = a->gbias ? a->gbias + index * C : NULL;
    REAL pre[CB], g[CB];
    for (int64_t unit = units * index / parts; unit < units * (index + 1) / parts; unit++) {
        const int64_t b = unit / blocks, c0 = unit % blocks * CB, width = C - c0 < CB ? C - c0 : CB;
        for (int64_t s = 0; s < a->Lx; s++) memset(a->gx + (b * a->Lx + s) * C + c0, 0, width * sizeof(REAL));
        for (int64_t t = 0; t < a->Lout; t++) {
            const REAL *restrict go = a->gout + (b * a->Lout + t) * C + c0;
            if (a->silu) {
                conv_row(a, b, c0, width, t, pre);
#pragma omp simd
                for (int64_t j = 0; j < width; j++) {
                    const REAL sig = sigmoid_real(pre[j]);
                    g[j] = go[j] * sig * (1 + pre[j] * (1 - sig));
                }
            } else {
                memcpy(g, go, width * sizeof(REAL));
            }
            if (gbias)
                for (int64_t j = 0; j < width; j++) gbias[c0 + j] += g[j];
            for (int64_t i = 0; i < a->k; i++) {
                const int64_t s = t - a->pad + i;
                if (s < 0 || s >= a->Lx) continue;
                const REAL *restrict xs = a->x + (b * a->Lx + s) * C + c0, *restrict wi = a->w + i * C + c0;
                REAL *restrict gxs = a->gx + (b * a->Lx + s) * C + c0, *restrict gwi = gw + i * C + c0;
#pragma omp simd
                for (int64_t j = 0; j < width; j++) {
                    gxs[j] += wi[j] * g[j];
                    gwi[j] += g[j] * xs[j];
                }
            }
        }
    }
    return 0;
}

int conv_forward(const REAL *x, const REAL *w, const REAL *bias, REAL *out, int64_t B, int64_t Lx, int64_t Lout,
                 int64_t C, int64_t k, int64_t pad, int silu, int threads) {
    Args a = {.x = x, .w = w, .bias = bias, .out = out, .B = B, .Lx = Lx, .Lout = Lout, .C = C, .k = k,
              .pad = pad, .silu = silu};
    return run_parts(forward_part, &a, threads);
}

int conv_backward(const REAL *x, const REAL *w, const REAL *bias, const REAL *gout, REAL *gx, REAL *gw,
                  REAL *gbias, int64_t B, int64_t Lx, int64_t Lout, int64_t C, int64_t k, int64_t pad, int silu,
                  int threads) {
    Args a = {.x = x, .w = w, .bias = bias, .gout = gout, .gx = gx, .gw = gw, .gbias = gbias, .B = B, .Lx = Lx,
              .Lout = Lout, .C = C, .k = k, .pad = pad, .silu = silu};
    return run_parts(backward_part, &a, threads);
}
