/*
 * The CUDA backend's two kernels, launched once each per chunk of columns:
 *
 *  1. quantize_kernel (one block per column): max|x| (or the binary mean),
 *     the exact activation rule with __fdiv_rn / __fmul_rn / __float2int_rn,
 *     and the bit transpose into act planes by warp ballots, written straight
 *     into the tensor-core B register order (cuda_layout.h), plus the
 *     popcount of every act plane.
 *  2. gemm_kernel (one block per 16 rows x one group of columns): ONE fused
 *     pass over all used weight planes. For each plane it counts
 *     popcount(t_p & a_b) for every act plane b of every column, either with
 *     mma.sync m16n8k256 .b1 .and.popc (tensor cores) or with AND + __popc
 *     (CUDA cores); the 4 warps split K and add their counts in shared
 *     memory. Then D = sum_b w_b (2 cnt_b - popcount(a_b)) exactly in int64,
 *     and the exact combine of docs/numerics.md, as the CPU does: residual
 *     acc = __fmaf_rn(c[p], (float)D_p * s_x, acc) in plane order, y = acc;
 *     uniform D_u = sum_p 2^(n-1-p) D_p, y = alpha * ((float)D_u * s_x);
 *     then + bias.
 *
 * Grouped matrices: each count is weighted by its row's multiplier for the
 * word's group before it is summed (the popcount path per word; the MMA path
 * per group, masking the A registers of other groups when a group is
 * narrower than the 256-bit chunk), and the subtracted term becomes
 * sum_g m[row][g] sum_{j in g} q_j, from per-word sums of q that the
 * quantize kernel writes.
 *
 * Per-row plane counts (docs/row-planes.md) take the gemm kernel's COUNTS
 * instantiation, which only the matrices with counts reach: a row group
 * reads the planes of its first row (its largest count, capped by the
 * columns' largest) from the compact slabs, each (row, column) pair
 * combines only its first min(count, column planes) planes with that
 * prefix's coefficients, and the output and bias are at the caller's row
 * perm[r]. Both inner paths and every batch size go through it. Matrices
 * without counts take the other instantiation, the code as it was.
 *
 * Binary activations (act_bits 1) use two act planes, sign and !sign, with
 * weights +1 and -1: t.s = (2 popc(t&s) - popc(s)) - (2 popc(t&~s) - popc(~s)),
 * so both paths stay in the AND form (Hopper has no .xor.popc MMA).
 *
 * Built with --fmad=false: no multiply-add is contracted behind our back.
 */
#include "cuda_internal.h"
#include "cuda_layout.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "the CUDA backend needs sm_80 or newer (m16n8k256 b1 MMA); set BP_CUDA_ARCHITECTURES"
#endif

#define QBLOCK         256
#define QWARPS         (QBLOCK / 32)
#define GTHREADS       (BP_CUDA_WARPS * 32)
#define MAX_GROUP_COLS 16 /* plane-columns 32 / smallest A (2) */

template <int T> __device__ __forceinline__ float load_x(const void *p, size_t i);
template <> __device__ __forceinline__ float load_x<BP_CUDA_F32>(const void *p, size_t i) {
    return ((const float *)p)[i];
}
template <> __device__ __forceinline__ float load_x<BP_CUDA_F16>(const void *p, size_t i) {
    return __half2float(((const __half *)p)[i]);
}
template <> __device__ __forceinline__ float load_x<BP_CUDA_BF16>(const void *p, size_t i) {
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

template <int T> __device__ __forceinline__ void store_y(void *p, size_t i, float v);
template <> __device__ __forceinline__ void store_y<BP_CUDA_F32>(void *p, size_t i, float v) {
    ((float *)p)[i] = v;
}
template <> __device__ __forceinline__ void store_y<BP_CUDA_F16>(void *p, size_t i, float v) {
    ((__half *)p)[i] = __float2half_rn(v);
}
template <> __device__ __forceinline__ void store_y<BP_CUDA_BF16>(void *p, size_t i, float v) {
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
}

/* Plain store into mapped host memory: idempotent, so no atomics over PCIe. */
__device__ __forceinline__ void raise_flag(unsigned *flags, int which) {
    *(volatile unsigned *)&flags[which] = 1u;
}

/* ---- 1. activation quantization and bit transpose ----------------------- */

template <int XT>
__global__ void __launch_bounds__(QBLOCK) quantize_kernel(const bp_cuda_launch l) {
    __shared__ float s_max[QWARPS];
    __shared__ double s_sum[QWARPS];
    __shared__ int s_neg[QWARPS], s_bad[QWARPS];
    __shared__ int32_t s_pop[BP_CUDA_MAX_ACT_PLANES];
    __shared__ float s_inv, s_scale, s_pre;
    __shared__ int s_signed, s_zero;

    const int c = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t base = (size_t)c * l.ldx, cols = l.cols;
    const bool binary = l.act_bits == 1;

    /* Pass 1: max|x| (exact in any order), sign mode, finiteness; for the
     * binary scale sum|x| in double (order-dependent, like every backend). */
    float amax = 0.0f;
    double sum = 0.0;
    int neg = 0, bad = 0;
    for (size_t j = threadIdx.x; j < cols; j += QBLOCK) {
        float v = load_x<XT>(l.x, base + j);
        amax = fmaxf(amax, fabsf(v));
        neg |= !(v >= 0.0f);
        bad |= !isfinite(v);
        if (binary)
            sum = __dadd_rn(sum, fabs((double)v));
    }
    for (int o = 16; o; o >>= 1) {
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        sum = __dadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, o));
    }
    neg = __any_sync(0xffffffffu, neg);
    bad = __any_sync(0xffffffffu, bad);
    if (lane == 0) {
        s_max[warp] = amax;
        s_sum[warp] = sum;
        s_neg[warp] = neg;
        s_bad[warp] = bad;
    }
    if (threadIdx.x < BP_CUDA_MAX_ACT_PLANES)
        s_pop[threadIdx.x] = 0;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < QWARPS; w++) {
            amax = fmaxf(amax, s_max[w]);
            sum = __dadd_rn(sum, s_sum[w]);
            neg |= s_neg[w];
            bad |= s_bad[w];
        }
        if (bad)
            raise_flag(l.flags, BP_CUDA_FLAG_X);
        if (binary) {
            s_signed = 1;
            s_zero = sum == 0.0;
            s_scale =
                l.act_scale > 0.0f ? l.act_scale : __double2float_rn(__ddiv_rn(sum, (double)cols));
            s_inv = 0.0f;
            s_pre = 1.0f;
        } else {
            const int a = l.act_bits;
            const float L = neg ? (float)((1u << (a - 1)) - 1u) : (float)((1u << a) - 1u);
            s_signed = neg;
            s_zero = amax == 0.0f;
            s_pre = 1.0f;
            if (s_zero) {
                s_inv = 0.0f;
                s_scale = 0.0f;
            } else if (l.act_scale > 0.0f) {
                s_inv = __fdiv_rn(1.0f, l.act_scale);
                s_scale = l.act_scale;
            } else {
                /* Tiny columns: scaled by 2^64 first, exactly (src/activations.c). */
                s_pre = amax < 0x1p-64f ? 0x1p64f : 1.0f;
                s_inv = __fdiv_rn(L, __fmul_rn(amax, s_pre));
                s_scale = __fdiv_rn(amax, L);
            }
        }
    }
    __syncthreads();

    /* Pass 2: q per element, then one ballot per act plane gives a 32-bit
     * word; lane b keeps plane b's word and its popcount. */
    const int A = l.A, a = l.act_bits;
    const int L = s_signed ? (int)((1u << (a - 1)) - 1u) : (int)((1u << a) - 1u);
    const int lo = s_signed ? -L : 0;
    const float inv = s_inv, pre = s_pre;
    const size_t KC = l.kwords / 8;
    const int grp = c / l.cpg, jbase = (c % l.cpg) * A;
    int32_t mypop = 0;
    for (size_t w = warp; w < l.kwords; w += QWARPS) {
        const size_t j = w * 32 + lane;
        int q = 0;
        if (j < cols) {
            float v = load_x<XT>(l.x, base + j);
            if (binary) {
                q = v < 0.0f ? -1 : 1;
            } else if (v != 0.0f) { /* inv may be +Inf for tiny fixed scales */
                int r = __float2int_rn(__fmul_rn(__fmul_rn(v, pre), inv));
                q = r > L ? L : (r < lo ? lo : r);
            }
        }
        uint32_t mine = 0;
        if (binary) {
            uint32_t s = __ballot_sync(0xffffffffu, q > 0), ns = __ballot_sync(0xffffffffu, q < 0);
            mine = lane == 0 ? s : ns;
        } else {
            for (int b = 0; b < A; b++) {
                uint32_t bits = __ballot_sync(0xffffffffu, ((unsigned)q >> b) & 1u);
                if (lane == b)
                    mine = bits;
            }
        }
        if (lane < A) {
            l.act[bp_cuda_b_index(grp, l.ntiles, KC, jbase + lane, w)] = mine;
            mypop += __popc(mine);
        }
        const int wsum = __reduce_add_sync(0xffffffffu, q);
        if (lane == 0)
            l.wq[(size_t)c * l.kwords + w] = wsum;
    }
    if (lane < A)
        atomicAdd(&s_pop[lane], mypop);

    /* The last column of a group zeroes the group's padding plane-columns,
     * which the MMA reads as part of its last n-tile. */
    if (c % l.cpg == l.cpg - 1 || c == l.ncols - 1) {
        const size_t j0 = (size_t)jbase + A, npad = (size_t)l.ntiles * 8 - j0;
        for (size_t i = threadIdx.x; i < npad * l.kwords; i += QBLOCK)
            l.act[bp_cuda_b_index(grp, l.ntiles, KC, j0 + i / l.kwords, i % l.kwords)] = 0u;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        bp_cuda_col col;
        col.scale = s_scale;
        col.planes = l.col_planes[c];
        col.zero = s_zero;
        col.is_signed = s_signed;
        for (int b = 0; b < BP_CUDA_MAX_ACT_PLANES; b++)
            col.pop[b] = b < A ? s_pop[b] : 0;
        l.colinfo[c] = col;
    }
}

/* ---- 0. the rotation of K (docs/numerics.md, src/rotation.c) ----------- */

/* One block per column: signs, butterfly stages h = 1, 2, ..., b/2 per
 * block of b = 4^l columns with a barrier between stages, then one multiply
 * by 2^-l; the CPU's float operations, so identical values. */
template <int XT> __global__ void __launch_bounds__(QBLOCK) rotate_kernel(const bp_cuda_launch l) {
    const int c = blockIdx.x;
    const size_t cols = l.cols, base = (size_t)c * l.ldx;
    float *v = l.xrot + (size_t)c * cols;
    for (size_t j = threadIdx.x; j < cols; j += QBLOCK) {
        const float e = load_x<XT>(l.x, base + j);
        v[j] = ((l.rot_signs[j / 32] >> (j % 32)) & 1u) ? -e : e;
    }
    for (size_t s = 0; s < cols;) {
        size_t b = (size_t)l.rot_block;
        if (cols - s < b) {
            b = 1;
            while (b * 4 <= cols - s)
                b *= 4;
        }
        float *vb = v + s;
        for (size_t h = 1; h < b; h *= 2) {
            __syncthreads();
            for (size_t i = threadIdx.x; i < b / 2; i += QBLOCK) {
                const size_t j = (i / h) * 2 * h + i % h;
                const float a = vb[j], e = vb[j + h];
                vb[j] = __fadd_rn(a, e);
                vb[j + h] = __fsub_rn(a, e);
            }
        }
        __syncthreads();
        int L = 0;
        while (((size_t)1 << L) < b)
            L++;
        const float scale = __int_as_float((127 - (L + 1) / 2) << 23);
        for (size_t j = threadIdx.x; j < b; j += QBLOCK)
            vb[j] = __fmul_rn(vb[j], scale);
        __syncthreads();
        s += b;
    }
}

/* ---- 2. the fused plane kernel ------------------------------------------ */

__device__ __forceinline__ void mma_b1_and(int (&d)[4], const uint4 &a, const uint2 &b) {
    asm("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y));
}

/* Weight of act plane b in D. */
__device__ __forceinline__ long long act_weight(const bp_cuda_launch &l, int is_signed, int b) {
    if (l.act_bits == 1)
        return b == 0 ? 1 : -1;
    long long w = 1LL << b;
    return (is_signed && b == l.act_bits - 1) ? -w : w;
}

template <int PATH, int YT, bool COUNTS>
__global__ void __launch_bounds__(GTHREADS) gemm_kernel(const bp_cuda_launch l) {
    constexpr int MAXJ = PATH == BP_CUDA_PATH_MMA ? BP_CUDA_MMA_COLPLANES : BP_CUDA_POPC_COLPLANES;
    constexpr int NT = MAXJ / 8;
    __shared__ int s_cnt[16][MAXJ + 1];
    __shared__ float s_acc[16 * MAX_GROUP_COLS];
    __shared__ long long s_du[16 * MAX_GROUP_COLS];   /* uniform: D_u by Horner */
    __shared__ long long s_base[16 * MAX_GROUP_COLS]; /* grouped: sum_g m_g Q_g */
    __shared__ bp_cuda_col s_col[MAX_GROUP_COLS];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gid = lane >> 2, tig = lane & 3;
    const int grp = blockIdx.x, c0 = grp * l.cpg;
    const int nc = min(l.cpg, l.ncols - c0);
    const size_t KC = l.kwords / 8;
    const int A = l.A, jg = l.jg, ntiles = l.ntiles;

    for (int i = tid; i < nc; i += GTHREADS)
        s_col[i] = l.colinfo[c0 + i];
    __syncthreads();
    int nmax = 0;
    for (int i = 0; i < nc; i++)
        if (!s_col[i].zero && s_col[i].planes > nmax)
            nmax = s_col[i].planes;

    /* This block's plane-columns in B order; tile t of chunk kc is at
     * act_base + (t * KC + kc) * 32 (uint2 units). */
    const uint2 *act_base = (const uint2 *)l.act + (size_t)grp * ntiles * KC * 32;

    for (size_t g = blockIdx.y; g < l.row_groups; g += gridDim.y) {
        const uint8_t *mt = l.mult + g * l.wgroups * 16; /* this row group's tiles */
        for (int i = tid; i < 16 * nc; i += GTHREADS) {
            s_acc[i] = 0.0f;
            s_du[i] = 0;
            long long base = 0;
            if (l.grouped) {
                const int r = i & 15, cl = i >> 4;
                const int32_t *wq = l.wq + (size_t)(c0 + cl) * l.kwords;
                for (size_t wg = 0; wg < l.wgroups; wg++) {
                    long long qg = 0;
                    const size_t w1 = min((wg + 1) * l.group_words, l.kwords);
                    for (size_t w = wg * l.group_words; w < w1; w++)
                        qg += wq[w];
                    base += (long long)mt[wg * 16 + r] * qg;
                }
            }
            s_base[i] = base;
        }
        /* With counts, the planes of the group's first row: no other row of
         * the group uses more, and every slab below it holds the group. */
        const int gplanes = COUNTS ? bp_cuda_group_planes(l.row_planes, g, nmax) : nmax;
        for (int p = 0; p < gplanes; p++) {
            for (int i = tid; i < 16 * (MAXJ + 1); i += GTHREADS)
                (&s_cnt[0][0])[i] = 0;
            __syncthreads();
            const uint32_t *slab =
                l.planes + (COUNTS ? l.slab_offset[p] : (size_t)p * l.plane_words);
            const uint4 *wp = (const uint4 *)slab + g * KC * 32 + lane;
            if (PATH == BP_CUDA_PATH_MMA) {
                int acc[NT][4];
#pragma unroll
                for (int t = 0; t < NT; t++)
                    acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0;
                if (!l.grouped) {
#pragma unroll 2
                    for (size_t kc = warp; kc < KC; kc += BP_CUDA_WARPS) {
                        const uint4 a = __ldg(wp + kc * 32);
#pragma unroll
                        for (int t = 0; t < NT; t++)
                            if (t < ntiles) {
                                const uint2 b = __ldg(act_base + (t * KC + kc) * 32 + lane);
                                mma_b1_and(acc[t], a, b);
                            }
                    }
                } else {
                    /* One MMA per group in the chunk (masking the registers
                     * of the others), its counts weighted by the multiplier
                     * of the accumulator's row. */
                    const size_t gw = l.group_words;
                    const int sub = gw >= 8 ? 1 : (int)(8 / gw);
                    for (size_t kc = warp; kc < KC; kc += BP_CUDA_WARPS) {
                        const uint4 a = __ldg(wp + kc * 32);
                        uint2 bt[NT];
#pragma unroll
                        for (int t = 0; t < NT; t++)
                            bt[t] = t < ntiles ? __ldg(act_base + (t * KC + kc) * 32 + lane)
                                               : make_uint2(0u, 0u);
                        for (int s = 0; s < sub; s++) {
                            const size_t wg = (8 * kc) / gw + (size_t)s;
                            uint4 am = a;
                            if (sub > 1) {
                                /* Register r holds chunk word tig + 4 (r >> 1). */
                                const bool lo_in = (size_t)tig / gw == (size_t)s;
                                const bool hi_in = (size_t)(tig + 4) / gw == (size_t)s;
                                am.x = lo_in ? a.x : 0u;
                                am.y = lo_in ? a.y : 0u;
                                am.z = hi_in ? a.z : 0u;
                                am.w = hi_in ? a.w : 0u;
                            }
                            const int m0 = mt[wg * 16 + gid], m1 = mt[wg * 16 + gid + 8];
#pragma unroll
                            for (int t = 0; t < NT; t++)
                                if (t < ntiles) {
                                    int tmp[4] = {0, 0, 0, 0};
                                    mma_b1_and(tmp, am, bt[t]);
#pragma unroll
                                    for (int r = 0; r < 4; r++)
                                        acc[t][r] += (r >> 1 ? m1 : m0) * tmp[r];
                                }
                        }
                    }
                }
#pragma unroll
                for (int t = 0; t < NT; t++)
                    if (t < ntiles)
#pragma unroll
                        for (int r = 0; r < 4; r++)
                            atomicAdd(
                                &s_cnt[bp_cuda_c_row(lane, r)][t * 8 + bp_cuda_c_col(lane, r)],
                                acc[t][r]);
            } else {
                int lo[MAXJ], hi[MAXJ]; /* rows gid and gid + 8 */
#pragma unroll
                for (int j = 0; j < MAXJ; j++)
                    lo[j] = hi[j] = 0;
                const uint2 *ap = act_base + tig;
                for (size_t kc = warp; kc < KC; kc += BP_CUDA_WARPS) {
                    const uint4 a = __ldg(wp + kc * 32);
                    /* Multipliers of rows gid, gid + 8 for chunk words tig
                     * (x, y) and tig + 4 (z, w); 1 per row. */
                    int mx = 1, mz = 1, my = 1, mw = 1;
                    if (l.grouped) {
                        const size_t gx = (8 * kc + tig) / l.group_words;
                        const size_t gz = (8 * kc + tig + 4) / l.group_words;
                        mx = mt[gx * 16 + gid];
                        my = mt[gx * 16 + gid + 8];
                        mz = mt[gz * 16 + gid];
                        mw = mt[gz * 16 + gid + 8];
                    }
#pragma unroll
                    for (int j = 0; j < MAXJ; j++)
                        if (j < jg) {
                            const uint2 b = __ldg(ap + ((j / 8) * KC + kc) * 32 + 4 * (j % 8));
                            lo[j] += mx * __popc(a.x & b.x) + mz * __popc(a.z & b.y);
                            hi[j] += my * __popc(a.y & b.x) + mw * __popc(a.w & b.y);
                        }
                }
#pragma unroll
                for (int j = 0; j < MAXJ; j++)
                    if (j < jg) {
                        atomicAdd(&s_cnt[gid][j], lo[j]);
                        atomicAdd(&s_cnt[gid + 8][j], hi[j]);
                    }
            }
            __syncthreads();
            /* Exact D and the fma chain, one (row, column) pair per thread. */
            for (int i = tid; i < 16 * nc; i += GTHREADS) {
                const int r = i & 15, cl = i >> 4;
                const bp_cuda_col *col = &s_col[cl];
                const size_t row = g * 16 + (size_t)r;
                if (col->zero || p >= col->planes || row >= l.rows)
                    continue;
                /* With counts the pair uses min(count, column planes) planes. */
                if (COUNTS && p >= (int)l.row_planes[row])
                    continue;
                long long d = 0;
                if (l.grouped) {
                    d = -s_base[i];
                    for (int b = 0; b < A; b++)
                        d += act_weight(l, col->is_signed, b) * 2LL * s_cnt[r][cl * A + b];
                } else {
                    for (int b = 0; b < A; b++)
                        d += act_weight(l, col->is_signed, b) *
                             (2LL * s_cnt[r][cl * A + b] - (long long)col->pop[b]);
                }
                if (l.uniform) {
                    s_du[i] = 2 * s_du[i] + d; /* Horner: D_u exact */
                } else {
                    size_t n = (size_t)col->planes;
                    if (COUNTS && (size_t)l.row_planes[row] < n)
                        n = l.row_planes[row];
                    const float cp = l.coef[l.rows * (n - 1) * n / 2 + row * n + (size_t)p];
                    s_acc[i] = __fmaf_rn(cp, __fmul_rn(__ll2float_rn(d), col->scale), s_acc[i]);
                }
            }
            __syncthreads();
        }
        for (int i = tid; i < 16 * nc; i += GTHREADS) {
            const int r = i & 15, cl = i >> 4;
            const size_t row = g * 16 + (size_t)r;
            if (row >= l.rows)
                continue;
            /* The caller's row: y and bias are in the caller's order. */
            const size_t orow = COUNTS ? (size_t)l.perm[row] : row;
            const float bias = l.bias ? l.bias[orow] : 0.0f;
            if (l.bias && grp == 0 && cl == 0 && !isfinite(bias))
                raise_flag(l.flags, BP_CUDA_FLAG_BIAS);
            float v;
            if (s_col[cl].zero)
                v = bias;
            else {
                if (l.uniform) {
                    size_t n = (size_t)s_col[cl].planes;
                    if (COUNTS && (size_t)l.row_planes[row] < n)
                        n = l.row_planes[row];
                    const float alpha = l.coef[l.rows * (n - 1) * n / 2 + row * n + n - 1];
                    v = __fmul_rn(alpha, __fmul_rn(__ll2float_rn(s_du[i]), s_col[cl].scale));
                } else {
                    v = s_acc[i];
                }
                if (l.bias)
                    v = __fadd_rn(v, bias);
                if (!isfinite(v) && isfinite(bias))
                    raise_flag(l.flags, BP_CUDA_FLAG_Y); /* an overflow of the float range */
            }
            store_y<YT>(l.y, (size_t)(c0 + cl) * l.ldy + orow, v);
        }
    }
}

/* ---- launch ------------------------------------------------------------- */

template <int PATH, bool COUNTS>
static void launch_gemm(const bp_cuda_launch *l, dim3 grid, cudaStream_t s) {
    switch (l->y_type) {
    case BP_CUDA_F16:
        gemm_kernel<PATH, BP_CUDA_F16, COUNTS><<<grid, GTHREADS, 0, s>>>(*l);
        break;
    case BP_CUDA_BF16:
        gemm_kernel<PATH, BP_CUDA_BF16, COUNTS><<<grid, GTHREADS, 0, s>>>(*l);
        break;
    default:
        gemm_kernel<PATH, BP_CUDA_F32, COUNTS><<<grid, GTHREADS, 0, s>>>(*l);
    }
}

extern "C" int bp_cuda__launch(const bp_cuda_launch *l, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    if (l->rot_block) {
        /* Rotate into xrot, then quantize the rotated floats. */
        switch (l->x_type) {
        case BP_CUDA_F16:
            rotate_kernel<BP_CUDA_F16><<<l->ncols, QBLOCK, 0, s>>>(*l);
            break;
        case BP_CUDA_BF16:
            rotate_kernel<BP_CUDA_BF16><<<l->ncols, QBLOCK, 0, s>>>(*l);
            break;
        default:
            rotate_kernel<BP_CUDA_F32><<<l->ncols, QBLOCK, 0, s>>>(*l);
        }
        bp_cuda_launch lr = *l;
        lr.x = l->xrot;
        lr.ldx = l->cols;
        lr.x_type = BP_CUDA_F32;
        quantize_kernel<BP_CUDA_F32><<<l->ncols, QBLOCK, 0, s>>>(lr);
    } else {
        switch (l->x_type) {
        case BP_CUDA_F16:
            quantize_kernel<BP_CUDA_F16><<<l->ncols, QBLOCK, 0, s>>>(*l);
            break;
        case BP_CUDA_BF16:
            quantize_kernel<BP_CUDA_BF16><<<l->ncols, QBLOCK, 0, s>>>(*l);
            break;
        default:
            quantize_kernel<BP_CUDA_F32><<<l->ncols, QBLOCK, 0, s>>>(*l);
        }
    }
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        return (int)err;
    dim3 grid((unsigned)l->ngroups, (unsigned)(l->row_groups < 65535 ? l->row_groups : 65535));
    if (l->path == BP_CUDA_PATH_MMA && l->row_planes)
        launch_gemm<BP_CUDA_PATH_MMA, true>(l, grid, s);
    else if (l->path == BP_CUDA_PATH_MMA)
        launch_gemm<BP_CUDA_PATH_MMA, false>(l, grid, s);
    else if (l->row_planes)
        launch_gemm<BP_CUDA_PATH_POPCOUNT, true>(l, grid, s);
    else
        launch_gemm<BP_CUDA_PATH_POPCOUNT, false>(l, grid, s);
    return (int)cudaGetLastError();
}
