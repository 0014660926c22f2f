/* gemv --backend cuda in a build without the CUDA backend. */
#include "bench_cmds.h"
#include "bench_common.h"

int bench_cmd_gemv_cuda(const bench_opts *o) {
    (void)o;
    return bench_fail("--backend cuda: this bitplane-bench was built without CUDA (configure "
                      "with -DBP_CUDA=ON on a machine with nvcc)");
}
