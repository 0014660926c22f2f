/*
 * Shared definitions for the bitplane OpenCL kernels (OpenCL C 1.2). The
 * host concatenates common.cl, quantize.cl and gemm_popcount.cl, in that
 * order, into one program; opencl/ocl_internal.h mirrors the layouts below.
 *
 * Exactness: OpenCL C contracts a*b+c into fma by default, which would make
 * results differ from the CPU; every multiply and add here is a separate
 * rounding unless it is written as fma().
 */
#pragma OPENCL FP_CONTRACT OFF

#ifdef BP_HAVE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double bp_sum_t;
#else
typedef float bp_sum_t;
#endif

#define BP_MAX_ACT_BITS 16
#define BP_ROW_GROUP    16

/* Per-column record written by bp_quantize_columns, read by the GEMM. */
#define BP_CI_SCALE    0 /* s_x as float bits */
#define BP_CI_FLAGS    1
#define BP_CI_POPCOUNT 2 /* popcount of activation plane b at BP_CI_POPCOUNT + b */
#define BP_CI_STRIDE   (BP_CI_POPCOUNT + BP_MAX_ACT_BITS)

#define BP_CF_ZERO      1 /* every q is 0: y is the bias alone */
#define BP_CF_SIGNED    2 /* top activation plane weighs -2^(a-1) */
#define BP_CF_NONFINITE 4 /* the column holds NaN or Inf: y is NaN */

/* Deferred status bits, OR-ed into the context's status word. */
#define BP_ST_X_NONFINITE    1
#define BP_ST_BIAS_NONFINITE 2
#define BP_ST_Y_OVERFLOW     4 /* a result of finite inputs overflowed float */

/*
 * One correctly rounded float32 division (the activation rule, step 4).
 * The host builds with -cl-fp32-correctly-rounded-divide-sqrt when the device
 * reports CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT; otherwise it defines
 * BP_DIV_FP64 and the quotient of the two floats is taken in double and
 * rounded once to float, which is also correctly rounded (53 >= 2*24 + 2
 * bits, so the double rounding is innocuous).
 */
static inline float bp_div(float a, float b) {
#ifdef BP_DIV_FP64
    return (float)((double)a / (double)b);
#else
    return a / b;
#endif
}
