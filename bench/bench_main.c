/*
 * bitplane-bench: measures bitplane against the machine's own limits and
 * against OpenBLAS fp32, in one process run. Figures are measured, never
 * asserted; every time is the median of --reps timed calls after warm-up
 * (CLOCK_MONOTONIC). Inputs are Gaussian weights and activations from a
 * fixed --seed (default 42).
 *
 *   bitplane-bench gemv [--m 65536] [--k 4096] [--batch 1] [--planes 1,2,4]
 *       [--act-bits 8] [--threads 1] [--reps 20] [--bits 8]
 *       [--method uniform|residual] [--clip 0] [--kernel
 * auto|reference|portable|avx2|avx2-lut|avx-vnni|avx512|avx512-lut|avx512-vnni|
 * avx512-vnni-batched|neon|neon-lut|neon-dotprod]
 *       [--json]
 *     Lines: stream_read (the fastest of many read-only loop forms over
 *     max(1 GiB, 4 x LLC), same threads, `isa` naming the winner; every
 *     form follows as a stream_form line, see docs/bandwidth-probe.md), openblas_sgemv (batch
 * 1) or openblas_sgemm (batch > 1), then one `bitplane` line per (act_bits, planes) with
 * frac_of_stream (its GB/s over the stream probe's) and speedup_vs_fp32 (OpenBLAS median over its
 * median). bytes = planes*m*ceil(k/512)*512/8 for bitplane, 4*m*k for OpenBLAS, the buffer size for
 * stream; gbps = bytes/median_s/1e9. Shapes whose weights are under 256 MiB rotate among copies so
 * they are read from memory, not cache.
 *
 *   bitplane-bench peak [--act-bits 8,16] [--planes 1,4,8] [--m 4096] [--k 4096]
 *       [--threads 1] [--reps 20] [--json]
 *     In-cache GEMV as bit_ops_per_s = m*k*planes*act_bits/median_s
 *     (kind bitplane_peak) and the register-only VPOPCNTQ loop as
 *     bit_ops_per_s = 512*popcounts/s (kind vpopcntq_peak); frac_of_peak is
 *     their ratio. Without AVX512F+VPOPCNTDQ (CPUID and XCR0) the VPOPCNTQ
 *     line is a skip line and frac_of_peak is null.
 *
 *   bitplane-bench quantize [--m 65536] [--k 4096] [--method uniform|residual|both]
 *       [--clip 0,0.9,...] [--bits 8] [--threads 1] [--reps 3] [--json]
 *     Quantization time and prefix_error[n-1] = bp_matrix_prefix_error(m, n).
 *
 *   bitplane-bench accuracy [--m 1024] [--k 4096] [--batch 1] [--act-bits 8,16]
 *       [--method both] [--clip 0,1,0.9] [--bits 8] [--threads 1] [--json]
 *     Per quantizer (uniform at each clip, 0 = automatic; residual), prefix n
 *     and act_bits: out_rel_err = ||y - W x||/||W x|| against fp64 with the
 *     unquantized W and x, out_rel_err_vs_wq against fp64 with the
 *     dequantized W_n, and weight_rel_err (the matrix's recorded prefix error).
 *
 * --json prints one JSON object per line; otherwise an aligned table. Fields
 * that do not apply to a line are null in JSON and "-" in the table.
 * Exit status: 0 ok, 1 library or system failure (bp_last_error() printed),
 * 2 bad arguments (message and usage on stderr).
 */
#include "bench_args.h"
#include "bench_cmds.h"

int main(int argc, char **argv) {
    bench_opts o;
    int rc = bench_parse_args(argc, argv, &o);
    if (rc == -1)
        return 0;
    if (rc != 0)
        return rc;
    switch (o.cmd) {
    case BENCH_CMD_GEMV:
        return bench_cmd_gemv(&o);
    case BENCH_CMD_PEAK:
        return bench_cmd_peak(&o);
    case BENCH_CMD_QUANTIZE:
        return bench_cmd_quantize(&o);
    case BENCH_CMD_ACCURACY:
        return bench_cmd_accuracy(&o);
    }
    return 2;
}
