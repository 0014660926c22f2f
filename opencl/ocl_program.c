/*
 * The program cache: the embedded sources are built once per context, device
 * and option set, with their kernels created alongside. A build failure
 * returns BP_ERR_BACKEND whose message carries the compiler log.
 */
#include "ocl_internal.h"
#include "ocl_sources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPTIONS_CAP 1024
#define LOG_SHOWN   3000 /* of the 4096-byte error message */

static void program_free(bp_ocl_program *p) {
    if (p->quantize)
        clReleaseKernel(p->quantize);
    if (p->rotate)
        clReleaseKernel(p->rotate);
    for (int i = 0; i < BP_MAX_ACT_BITS; i++)
        if (p->gemm[i])
            clReleaseKernel(p->gemm[i]);
    if (p->program)
        clReleaseProgram(p->program);
    free(p->options);
    free(p);
}

void bp__ocl_programs_free(bp_ocl_ctx *c) {
    while (c->programs) {
        bp_ocl_program *next = c->programs->next;
        program_free(c->programs);
        c->programs = next;
    }
}

static bp_status build_failure(bp_ocl_ctx *c, cl_program prog, cl_int err, const char *options) {
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) == CL_SUCCESS &&
        len > 0 && (log = malloc(len + 1)) != NULL &&
        clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) == CL_SUCCESS)
        log[len] = '\0';
    else if (log)
        log[0] = '\0';
    /* Keep the start of the log: compilers report the first error first. */
    bp_status st = bp__ocl_host->fail(
        BP_ERR_BACKEND,
        "OpenCL: building the bitplane kernels for '%s' with options '%.300s' "
        "failed: %s (%d); build log: %.*s%s",
        c->device_name, options, bp__ocl_error_name(err), (int)err, LOG_SHOWN,
        log && log[0] ? log : "(empty)", log && strlen(log) > LOG_SHOWN ? " [truncated]" : "");
    free(log);
    return st;
}

static bp_status build(bp_ocl_ctx *c, const char *options, bp_ocl_program **out) {
    bp_ocl_program *p = calloc(1, sizeof *p);
    if (!p || !(p->options = strdup(options))) {
        free(p);
        return bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate an OpenCL program");
    }
    p->device = c->device;
    const char *texts[16];
    unsigned n = bp__ocl_source_count < 16 ? bp__ocl_source_count : 16;
    for (unsigned i = 0; i < n; i++)
        texts[i] = bp__ocl_sources[i].text;
    cl_int err;
    p->program = clCreateProgramWithSource(c->context, n, texts, NULL, &err);
    if (!p->program) {
        program_free(p);
        return bp__ocl_fail(err, "clCreateProgramWithSource");
    }
    err = clBuildProgram(p->program, 1, &c->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        bp_status st = build_failure(c, p->program, err, options);
        program_free(p);
        return st;
    }
    p->quantize = clCreateKernel(p->program, "bp_quantize_columns", &err);
    if (err == CL_SUCCESS)
        p->rotate = clCreateKernel(p->program, "bp_rotate_columns", &err);
    for (int i = 0; i < BP_MAX_ACT_BITS && err == CL_SUCCESS; i++) {
        char name[32];
        snprintf(name, sizeof name, "bp_gemm_popcount_a%d", i + 1);
        p->gemm[i] = clCreateKernel(p->program, name, &err);
    }
    if (err != CL_SUCCESS) {
        program_free(p);
        return bp__ocl_fail(err, "clCreateKernel");
    }
    *out = p;
    return BP_OK;
}

bp_status bp__ocl_program_get(bp_ocl_ctx *c, const bp_ocl_program **out) {
    char options[OPTIONS_CAP];
    const char *extra = getenv("BP_OPENCL_BUILD_OPTIONS");
    int len = snprintf(options, sizeof options, "%s%s%s", c->options, extra && *extra ? " " : "",
                       extra ? extra : "");
    if (len < 0 || (size_t)len >= sizeof options)
        return bp__ocl_host->fail(BP_ERR_INVALID_ARGUMENT,
                                  "BP_OPENCL_BUILD_OPTIONS is too long (the build options are "
                                  "limited to %d bytes)",
                                  OPTIONS_CAP - 1);
    for (bp_ocl_program *p = c->programs; p; p = p->next)
        if (p->device == c->device && strcmp(p->options, options) == 0) {
            *out = p;
            return BP_OK;
        }
    bp_ocl_program *p = NULL;
    bp_status st = build(c, options, &p);
    if (st != BP_OK)
        return st;
    p->next = c->programs;
    c->programs = p;
    c->programs_built++;
    *out = p;
    return BP_OK;
}
