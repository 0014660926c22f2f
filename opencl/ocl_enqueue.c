/*
 * Enqueueing one GEMM (activation quantization, then the popcount kernel)
 * and the deferred reports of asynchronous calls.
 *
 * Scratch buffers (activation planes, column records) are created per call
 * and released right after the enqueue: OpenCL keeps a released buffer alive
 * until the commands that use it finish, so nothing here waits.
 */
#include "ocl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SET(k, i, v) clSetKernelArg((k), (i), sizeof(v), &(v))

static size_t round_up(size_t v, size_t to) {
    return (v + to - 1) / to * to;
}

/* Columns per chunk so that the activation scratch stays bounded. */
static size_t chunk_columns(const bp_ocl_ctx *c, size_t col_bytes, size_t batch) {
    size_t cap = BP_OCL_SCRATCH_BYTES < c->max_alloc ? BP_OCL_SCRATCH_BYTES : c->max_alloc;
    size_t chunk = cap / col_bytes;
    chunk = chunk < 1 ? 1 : chunk;
    return chunk < batch ? chunk : batch;
}

static bp_status enqueue_chunk(bp_ocl_ctx *c, const bp_ocl_program *prog, const bp_ocl_matrix *dm,
                               const bp_ocl_call *a, size_t c0, size_t nc, cl_mem act,
                               cl_mem colinfo, cl_mem rot, cl_command_queue q, cl_uint nwait,
                               const cl_event *wait, cl_event *done) {
    const bp_matrix *m = a->m;
    cl_uint kwords = (cl_uint)m->kwords, cols = (cl_uint)m->cols, rows = (cl_uint)m->rows;
    cl_ulong x_off = a->x_off + c0 * a->ldx, ldx = a->ldx;
    cl_int act_bits = a->act_bits;
    cl_float act_scale = a->act_scale;
    cl_mem x = a->x;
    cl_event rotated = NULL;
    cl_int err;
    if (m->rot_block) {
        /* Rotate the chunk's columns into rot (docs/numerics.md), then
         * quantize from there. */
        cl_uint block = (cl_uint)m->rot_block;
        cl_kernel kr = prog->rotate;
        err = SET(kr, 0, a->x);
        err |= SET(kr, 1, x_off);
        err |= SET(kr, 2, ldx);
        err |= SET(kr, 3, cols);
        err |= SET(kr, 4, dm->signs);
        err |= SET(kr, 5, block);
        err |= SET(kr, 6, rot);
        if (err != CL_SUCCESS)
            return bp__ocl_fail(err, "clSetKernelArg (rotate)");
        size_t rlocal = BP_OCL_QUANTIZE_GROUP, rglobal = nc * rlocal;
        err = clEnqueueNDRangeKernel(q, kr, 1, NULL, &rglobal, &rlocal, nwait, nwait ? wait : NULL,
                                     &rotated);
        if (err != CL_SUCCESS)
            return bp__ocl_fail(err, "clEnqueueNDRangeKernel (rotate)");
        x = rot;
        x_off = 0;
        ldx = cols;
        nwait = 1;
        wait = &rotated;
    }
    cl_kernel k = prog->quantize;
    err = SET(k, 0, x);
    err |= SET(k, 1, x_off);
    err |= SET(k, 2, ldx);
    err |= SET(k, 3, cols);
    err |= SET(k, 4, kwords);
    err |= SET(k, 5, act_bits);
    err |= SET(k, 6, act_scale);
    err |= SET(k, 7, act);
    err |= SET(k, 8, colinfo);
    err |= SET(k, 9, c->status);
    if (err != CL_SUCCESS) {
        if (rotated)
            clReleaseEvent(rotated);
        return bp__ocl_fail(err, "clSetKernelArg (quantize)");
    }
    size_t qlocal = BP_OCL_QUANTIZE_GROUP, qglobal = nc * qlocal;
    cl_event quantized;
    err = clEnqueueNDRangeKernel(q, k, 1, NULL, &qglobal, &qlocal, nwait, nwait ? wait : NULL,
                                 &quantized);
    if (rotated)
        clReleaseEvent(rotated);
    if (err != CL_SUCCESS)
        return bp__ocl_fail(err, "clEnqueueNDRangeKernel (quantize)");

    cl_ulong plane_words = m->plane_words, cp_off = c0, y_off = a->y_off + c0 * a->ldy;
    cl_ulong ldy = a->ldy, bias_off = a->bias_off;
    cl_int planes = a->planes;
    k = prog->gemm[a->act_bits - 1];
    err = SET(k, 0, dm->planes);
    err |= SET(k, 1, plane_words);
    err |= SET(k, 2, kwords);
    err |= SET(k, 3, rows);
    err |= SET(k, 4, cols);
    err |= SET(k, 5, dm->coef);
    cl_uint group_words = (cl_uint)m->group_words, ngroups = (cl_uint)m->ngroups;
    cl_int grouped = m->group_size != 0, uniform = m->method == BP_QUANT_UNIFORM;
    err |= SET(k, 6, dm->mult);
    err |= SET(k, 7, group_words);
    err |= SET(k, 8, ngroups);
    err |= SET(k, 9, grouped);
    err |= SET(k, 10, uniform);
    err |= SET(k, 11, act);
    err |= SET(k, 12, colinfo);
    err |= clSetKernelArg(k, 13, sizeof(cl_mem), a->column_planes ? &a->column_planes : NULL);
    err |= SET(k, 14, cp_off);
    err |= SET(k, 15, planes);
    err |= SET(k, 16, a->y);
    err |= SET(k, 17, y_off);
    err |= SET(k, 18, ldy);
    err |= clSetKernelArg(k, 19, sizeof(cl_mem), a->bias ? &a->bias : NULL);
    err |= SET(k, 20, bias_off);
    err |= SET(k, 21, c->status);
    err |= clSetKernelArg(k, 22, sizeof(cl_mem), dm->rowinfo ? &dm->rowinfo : NULL);
    if (err != CL_SUCCESS) {
        clReleaseEvent(quantized);
        return bp__ocl_fail(err, "clSetKernelArg (gemm)");
    }
    size_t local[2] = {BP_OCL_GEMM_GROUP, 1};
    size_t global[2] = {round_up(m->rows, BP_OCL_GEMM_GROUP), nc};
    err = clEnqueueNDRangeKernel(q, k, 2, NULL, global, local, 1, &quantized, done);
    clReleaseEvent(quantized);
    return err == CL_SUCCESS ? BP_OK : bp__ocl_fail(err, "clEnqueueNDRangeKernel (gemm)");
}

bp_status bp__ocl_enqueue(bp_ocl_ctx *c, const bp_ocl_call *a, cl_command_queue q, cl_uint nwait,
                          const cl_event *wait, cl_event *done) {
    const bp_ocl_program *prog;
    bp_ocl_matrix *dm;
    bp_status st = bp__ocl_program_get(c, &prog);
    if (st == BP_OK)
        st = bp__ocl_matrix_get(c, a->m, &dm);
    if (st != BP_OK)
        return st;
    size_t rot_bytes = a->m->rot_block ? a->m->cols * sizeof(cl_float) : 0;
    size_t col_bytes = (size_t)a->act_bits * a->m->kwords * sizeof(cl_uint) + rot_bytes;
    size_t chunk = chunk_columns(c, col_bytes, a->batch);
    size_t nchunks = (a->batch + chunk - 1) / chunk;
    cl_event *evs = calloc(nchunks, sizeof *evs);
    if (!evs)
        return bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu events", nchunks);
    size_t n = 0;
    for (size_t c0 = 0; c0 < a->batch && st == BP_OK; c0 += chunk, n++) {
        size_t nc = a->batch - c0 < chunk ? a->batch - c0 : chunk;
        cl_int err;
        cl_mem act =
            clCreateBuffer(c->context, CL_MEM_READ_WRITE, nc * (col_bytes - rot_bytes), NULL, &err);
        cl_mem info = act ? clCreateBuffer(c->context, CL_MEM_READ_WRITE,
                                           nc * BP_OCL_CI_STRIDE * sizeof(cl_int), NULL, &err)
                          : NULL;
        cl_mem rot = info && rot_bytes
                         ? clCreateBuffer(c->context, CL_MEM_READ_WRITE, nc * rot_bytes, NULL, &err)
                         : NULL;
        if (!act || !info || (rot_bytes && !rot))
            st = bp__ocl_fail(err, "clCreateBuffer (activation scratch)");
        else
            st = enqueue_chunk(c, prog, dm, a, c0, nc, act, info, rot, q, nwait, wait, &evs[n]);
        if (rot)
            clReleaseMemObject(rot);
        if (act)
            clReleaseMemObject(act);
        if (info)
            clReleaseMemObject(info);
        if (st != BP_OK)
            break;
    }
    if (st == BP_OK && n == 1) {
        *done = evs[0];
        evs[0] = NULL;
    } else if (st == BP_OK) {
        cl_int err = clEnqueueMarkerWithWaitList(q, (cl_uint)n, evs, done);
        if (err != CL_SUCCESS)
            st = bp__ocl_fail(err, "clEnqueueMarkerWithWaitList");
    }
    /* On a failure part way, earlier chunks stay enqueued; the caller waits
     * for the queue before reporting. */
    for (size_t i = 0; i < n; i++)
        if (evs[i])
            clReleaseEvent(evs[i]);
    free(evs);
    return st;
}

/* Note a device fault of a finished command, keeping the first one. */
static void note_fault(bp_ocl_ctx *c, cl_int exec) {
    if (c->fault != BP_OK)
        return;
    c->fault = BP_ERR_BACKEND;
    snprintf(c->fault_msg, sizeof c->fault_msg,
             "OpenCL: an earlier bp_opencl_gemm on '%s' failed on the device: %s (%d)",
             c->device_name, bp__ocl_error_name(exec), (int)exec);
}

bp_status bp__ocl_track(bp_ocl_ctx *c, cl_event ev) {
    /* Drop calls already complete, so the list stays short. */
    size_t kept = 0;
    for (size_t i = 0; i < c->npending; i++) {
        cl_int exec = CL_QUEUED;
        if (clGetEventInfo(c->pending[i], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof exec, &exec,
                           NULL) != CL_SUCCESS)
            exec = CL_QUEUED;
        if (exec == CL_COMPLETE || exec < 0) {
            if (exec < 0)
                note_fault(c, exec);
            clReleaseEvent(c->pending[i]);
        } else {
            c->pending[kept++] = c->pending[i];
        }
    }
    c->npending = kept;
    if (c->npending == c->pending_cap) {
        size_t cap = c->pending_cap ? 2 * c->pending_cap : 16;
        cl_event *p = realloc(c->pending, cap * sizeof *p);
        if (!p)
            return bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY, "cannot track an OpenCL event");
        c->pending = p;
        c->pending_cap = cap;
    }
    cl_int err = clRetainEvent(ev);
    if (err != CL_SUCCESS)
        return bp__ocl_fail(err, "clRetainEvent");
    c->pending[c->npending++] = ev;
    return BP_OK;
}

bp_status bp__ocl_collect(bp_ocl_ctx *c) {
    for (size_t i = 0; i < c->npending; i++) {
        cl_int exec = CL_COMPLETE;
        clWaitForEvents(1, &c->pending[i]);
        if (clGetEventInfo(c->pending[i], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof exec, &exec,
                           NULL) == CL_SUCCESS &&
            exec < 0)
            note_fault(c, exec);
        clReleaseEvent(c->pending[i]);
    }
    c->npending = 0;
    cl_int flags = 0, zero = 0;
    cl_int err =
        clEnqueueReadBuffer(c->queue, c->status, CL_TRUE, 0, sizeof flags, &flags, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return bp__ocl_fail(err, "clEnqueueReadBuffer (status word)");
    if (flags) {
        err = clEnqueueWriteBuffer(c->queue, c->status, CL_TRUE, 0, sizeof zero, &zero, 0, NULL,
                                   NULL);
        if (err != CL_SUCCESS)
            return bp__ocl_fail(err, "clEnqueueWriteBuffer (status word)");
    }
    if (c->fault != BP_OK) {
        bp_status st = bp__ocl_host->fail(c->fault, "%s", c->fault_msg);
        c->fault = BP_OK;
        return st;
    }
    if (flags == BP_OCL_ST_Y_OVERFLOW)
        return bp__ocl_host->fail(BP_ERR_NON_FINITE,
                                  "an earlier OpenCL gemm on this context had a result that "
                                  "overflowed the float range: the matrix's weights times its "
                                  "input exceed FLT_MAX (those outputs are Inf)");
    if (flags)
        return bp__ocl_host->fail(
            BP_ERR_NON_FINITE,
            "an earlier bp_opencl_gemm on this context had non-finite values (NaN or Inf) in "
            "%s%s%s; "
            "the affected outputs are NaN or Inf",
            flags & BP_OCL_ST_X_NONFINITE ? "x" : "",
            (flags & BP_OCL_ST_X_NONFINITE) && (flags & BP_OCL_ST_BIAS_NONFINITE) ? " and " : "",
            flags & BP_OCL_ST_BIAS_NONFINITE ? "bias" : "");
    return BP_OK;
}
