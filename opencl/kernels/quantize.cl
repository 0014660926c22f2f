/*
 * Activation quantization and bit transpose on the device, by the exact rule
 * of the CPU (src/activations.c), so q and s_x are identical integers and
 * floats on every backend:
 *   m = max|x| (exact in any order); unsigned mode (L = 2^a - 1) when every
 *   x >= 0, else signed (L = 2^(a-1) - 1); inv = L / m and s_x = m / L as
 *   correctly rounded divisions; q = rint(x * inv) with one float multiply,
 *   clamped; a fixed act_scale s uses inv = 1 / s and saturates.
 * act_bits 1: sign bits (1 = x >= 0) and s_x = mean|x|, summed in double
 * when the device has it; the order of that sum differs from the CPU, which
 * the design allows at act_bits 1.
 *
 * One work-group per column. Output: activation planes act[col][b][kwords]
 * (bit j of word w is column 32w + j; padding bits 0) and the column record.
 */
#ifndef BP_QWG
#define BP_QWG 64
#endif

__kernel __attribute__((reqd_work_group_size(BP_QWG, 1, 1))) void
bp_quantize_columns(__global const float *restrict x, ulong x_off, ulong ldx, uint cols,
                    uint kwords, int act_bits, float act_scale, __global uint *restrict act,
                    __global int *restrict colinfo, __global int *restrict status) {
    const uint lid = get_local_id(0);
    const ulong col = get_group_id(0);
    __global const float *xc = x + x_off + col * ldx;
    __local float lmax[BP_QWG];
    __local int lneg[BP_QWG];
    __local int lbad[BP_QWG];
    __local bp_sum_t lsum[BP_QWG];
    __local int lpc[BP_MAX_ACT_BITS];

    float amax = 0.0f;
    int neg = 0, bad = 0;
    bp_sum_t sum = 0;
    for (uint j = lid; j < cols; j += BP_QWG) {
        float v = xc[j];
        bad |= !isfinite(v);
        amax = fmax(amax, fabs(v));
        neg |= v < 0.0f;
        sum += fabs((bp_sum_t)v);
    }
    lmax[lid] = amax;
    lneg[lid] = neg;
    lbad[lid] = bad;
    lsum[lid] = sum;
    if (lid < BP_MAX_ACT_BITS)
        lpc[lid] = 0;
    for (uint s = BP_QWG / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) {
            lmax[lid] = fmax(lmax[lid], lmax[lid + s]);
            lneg[lid] |= lneg[lid + s];
            lbad[lid] |= lbad[lid + s];
            lsum[lid] += lsum[lid + s];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    amax = lmax[0];
    neg = lneg[0];
    bad = lbad[0];
    sum = lsum[0];

    int flags = bad ? BP_CF_NONFINITE : 0;
    float scale = 0.0f, inv = 0.0f, L = 0.0f, lo = 0.0f;
    if (act_bits == 1) {
        flags |= BP_CF_SIGNED | (sum == 0 ? BP_CF_ZERO : 0);
        scale = act_scale > 0.0f ? act_scale : (float)(sum / (bp_sum_t)cols);
    } else {
        L = neg ? (float)((1u << (act_bits - 1)) - 1u) : (float)((1u << act_bits) - 1u);
        lo = neg ? -L : 0.0f;
        flags |= neg ? BP_CF_SIGNED : 0;
        if (amax == 0.0f) {
            flags |= BP_CF_ZERO;
        } else if (act_scale > 0.0f) {
            inv = bp_div(1.0f, act_scale);
            scale = act_scale;
        } else {
            inv = bp_div(L, amax);
            scale = bp_div(amax, L);
        }
    }
    if (lid == 0) {
        colinfo[col * BP_CI_STRIDE + BP_CI_SCALE] = as_int(scale);
        colinfo[col * BP_CI_STRIDE + BP_CI_FLAGS] = flags;
        if (bad)
            atomic_or(status, BP_ST_X_NONFINITE);
    }
    /* The GEMM never reads the planes of a zero or non-finite column. */
    if (flags & (BP_CF_ZERO | BP_CF_NONFINITE))
        return;

    __global uint *ac = act + col * (ulong)act_bits * kwords;
    int pc[BP_MAX_ACT_BITS];
    for (int b = 0; b < BP_MAX_ACT_BITS; b++)
        pc[b] = 0;
    for (uint w = lid; w < kwords; w += BP_QWG) {
        int q[32];
        for (int j = 0; j < 32; j++) {
            uint idx = w * 32u + (uint)j;
            float v = idx < cols ? xc[idx] : 0.0f;
            if (act_bits == 1) {
                q[j] = idx < cols && !(v < 0.0f); /* the sign bit itself */
            } else {
                /* x == 0 first: inv may be +Inf for a subnormal m. */
                float prod = v * inv;
                float r = v == 0.0f ? 0.0f : rint(prod);
                r = r > L ? L : (r < lo ? lo : r);
                q[j] = (int)r;
            }
        }
        for (int b = 0; b < BP_MAX_ACT_BITS; b++) {
            if (b >= act_bits)
                break;
            uint word = 0;
            for (int j = 0; j < 32; j++)
                word |= (((uint)q[j] >> b) & 1u) << j;
            ac[(ulong)b * kwords + w] = word;
            pc[b] += (int)popcount(word);
        }
    }
    for (int b = 0; b < act_bits; b++)
        atomic_add(&lpc[b], pc[b]);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < (uint)act_bits)
        colinfo[col * BP_CI_STRIDE + BP_CI_POPCOUNT + lid] = lpc[lid];
}

/*
 * The rotation of K (src/rotation.c, docs/numerics.md), one work-group per
 * column: out = x with the signs applied, then per block of b = 4^l columns
 * the butterfly stages h = 1, 2, ..., b/2 ((a, c) -> (a + c, a - c), with a
 * barrier between stages), then one multiply by 2^-l. The same float
 * operations as the CPU, so the rotated inputs are identical. The
 * quantization kernel then reads out (ldx = cols).
 */
__kernel __attribute__((reqd_work_group_size(BP_QWG, 1, 1))) void
bp_rotate_columns(__global const float *restrict x, ulong x_off, ulong ldx, uint cols,
                  __global const uint *restrict signs, uint block, __global float *restrict out) {
    const uint lid = get_local_id(0);
    const ulong col = get_group_id(0);
    __global const float *xc = x + x_off + col * ldx;
    __global float *v = out + col * (ulong)cols;
    for (uint j = lid; j < cols; j += BP_QWG) {
        const float e = xc[j];
        v[j] = ((signs[j / 32] >> (j % 32)) & 1u) ? -e : e;
    }
    for (uint s = 0; s < cols;) {
        uint b = block;
        if (cols - s < b) {
            b = 1;
            while (b * 4 <= cols - s)
                b *= 4;
        }
        __global float *vb = v + s;
        for (uint h = 1; h < b; h *= 2) {
            barrier(CLK_GLOBAL_MEM_FENCE);
            for (uint i = lid; i < b / 2; i += BP_QWG) {
                const uint j = (i / h) * 2 * h + i % h;
                const float a = vb[j], c = vb[j + h];
                vb[j] = a + c;
                vb[j + h] = a - c;
            }
        }
        barrier(CLK_GLOBAL_MEM_FENCE);
        uint l = 0;
        while ((1u << l) < b)
            l++;
        const float scale = ldexp(1.0f, -(int)((l + 1) / 2));
        for (uint j = lid; j < b; j += BP_QWG)
            vb[j] = vb[j] * scale;
        s += b;
    }
}
