/*
 * Platform and device selection, and what the device must offer for the
 * exact numerics. Selection: bp_context_options.platform/.device (indices),
 * overridden by BP_OPENCL_DEVICE ("P:D" or a case-insensitive substring of
 * the device name); see bitplane_opencl.h.
 */
#include "ocl_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PLATFORMS 16
#define MAX_DEVICES   64
#define LIST_CAP      1024

typedef struct device_list {
    cl_uint nplatforms;
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint ndevices[MAX_PLATFORMS];
    cl_device_id devices[MAX_PLATFORMS][MAX_DEVICES];
    char text[LIST_CAP]; /* "0:0 'name', 0:1 'name'" for messages */
} device_list;

static void device_name(cl_device_id d, char *name, size_t cap) {
    name[0] = '\0';
    if (clGetDeviceInfo(d, CL_DEVICE_NAME, cap, name, NULL) != CL_SUCCESS)
        snprintf(name, cap, "?");
    name[cap - 1] = '\0';
}

static bp_status enumerate(device_list *l) {
    memset(l, 0, sizeof *l);
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, l->platforms, &l->nplatforms);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (err == CL_SUCCESS && l->nplatforms == 0))
        return bp__ocl_host->fail(BP_ERR_UNSUPPORTED,
                                  "no OpenCL platform is installed (the ICD loader found no "
                                  "driver; Debian: pocl-opencl-icd for the CPU, or the GPU "
                                  "vendor's ICD)");
    if (err != CL_SUCCESS)
        return bp__ocl_fail(err, "clGetPlatformIDs");
    if (l->nplatforms > MAX_PLATFORMS)
        l->nplatforms = MAX_PLATFORMS;
    size_t used = 0;
    for (cl_uint p = 0; p < l->nplatforms; p++) {
        err = clGetDeviceIDs(l->platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, l->devices[p],
                             &l->ndevices[p]);
        if (err == CL_DEVICE_NOT_FOUND)
            l->ndevices[p] = 0;
        else if (err != CL_SUCCESS)
            return bp__ocl_fail(err, "clGetDeviceIDs");
        if (l->ndevices[p] > MAX_DEVICES)
            l->ndevices[p] = MAX_DEVICES;
        for (cl_uint d = 0; d < l->ndevices[p] && used < LIST_CAP; d++) {
            char name[128];
            device_name(l->devices[p][d], name, sizeof name);
            used += (size_t)snprintf(l->text + used, LIST_CAP - used, "%s%u:%u '%s'",
                                     used ? ", " : "", p, d, name);
        }
    }
    if (!l->text[0])
        snprintf(l->text, LIST_CAP, "none");
    return BP_OK;
}

static bool contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* "P:D" with decimal indices. */
static bool parse_indices(const char *s, int *p, int *d) {
    char *end;
    if (!isdigit((unsigned char)*s))
        return false;
    long a = strtol(s, &end, 10);
    if (*end != ':' || !isdigit((unsigned char)end[1]))
        return false;
    long b = strtol(end + 1, &end, 10);
    if (*end || a > 1000000 || b > 1000000)
        return false;
    *p = (int)a;
    *d = (int)b;
    return true;
}

bp_status bp__ocl_select_device(const bp_context_options *opt, cl_platform_id *platform,
                                cl_device_id *device) {
    device_list *l = malloc(sizeof *l);
    if (!l)
        return bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the device list");
    bp_status st = enumerate(l);
    if (st != BP_OK) {
        free(l);
        return st;
    }
    int p = opt->platform, d = opt->device;
    const char *origin = "bp_context_options";
    const char *env = getenv("BP_OPENCL_DEVICE");
    if (env && *env) {
        origin = "BP_OPENCL_DEVICE";
        if (!parse_indices(env, &p, &d)) {
            p = -1;
            for (cl_uint i = 0; i < l->nplatforms && p < 0; i++)
                for (cl_uint j = 0; j < l->ndevices[i]; j++) {
                    char name[256];
                    device_name(l->devices[i][j], name, sizeof name);
                    if (contains_nocase(name, env)) {
                        p = (int)i;
                        d = (int)j;
                        break;
                    }
                }
            if (p < 0) {
                st = bp__ocl_host->fail(BP_ERR_UNSUPPORTED,
                                        "BP_OPENCL_DEVICE='%.64s' names no OpenCL device (give "
                                        "\"P:D\" indices or part of a device name); devices: %s",
                                        env, l->text);
                free(l);
                return st;
            }
        }
    }
    if ((cl_uint)p >= l->nplatforms || (cl_uint)d >= l->ndevices[p]) {
        st = bp__ocl_host->fail(BP_ERR_UNSUPPORTED,
                                "%s selects OpenCL platform %d device %d, which does not exist; "
                                "devices: %s",
                                origin, p, d, l->text);
        free(l);
        return st;
    }
    *platform = l->platforms[p];
    *device = l->devices[p][d];
    free(l);
    return BP_OK;
}

bp_status bp__ocl_device_options(cl_device_id device, char *options, size_t cap, char *name,
                                 size_t name_cap, size_t *max_alloc) {
    device_name(device, name, name_cap);
    cl_device_fp_config fp = 0, fp64 = 0;
    char profile[64] = "", ext[4096] = "";
    cl_ulong alloc = 0;
    cl_int err = clGetDeviceInfo(device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_PROFILE, sizeof profile, profile, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    if (err != CL_SUCCESS)
        return bp__ocl_fail(err, "clGetDeviceInfo");
    /* Extensions may be longer than the buffer: then look up fp64 by query. */
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, sizeof ext, ext, NULL) != CL_SUCCESS)
        ext[0] = '\0';
    profile[sizeof profile - 1] = ext[sizeof ext - 1] = '\0';
    if (clGetDeviceInfo(device, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL) != CL_SUCCESS)
        fp64 = 0;
    bool has_fp64 = fp64 != 0 || strstr(ext, "cl_khr_fp64") != NULL;
    bool cr_div = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
    /* 64-bit integers are core in the full profile, an extension in the
     * embedded one; exact D needs them. */
    if (strcmp(profile, "FULL_PROFILE") != 0 && !strstr(ext, "cles_khr_int64"))
        return bp__ocl_host->fail(BP_ERR_UNSUPPORTED,
                                  "OpenCL device '%s' (%s) has no 64-bit integers, which the "
                                  "exact accumulation needs",
                                  name, profile);
    if (!cr_div && !has_fp64)
        return bp__ocl_host->fail(BP_ERR_UNSUPPORTED,
                                  "OpenCL device '%s' offers neither correctly rounded float "
                                  "division (CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) nor fp64, so "
                                  "it cannot follow the exact activation rule",
                                  name);
    /* No -cl-mad-enable or -cl-fast-relaxed-math: the combine must round
     * every operation as written. */
    snprintf(options, cap, "-cl-std=CL1.2%s%s",
             cr_div ? " -cl-fp32-correctly-rounded-divide-sqrt" : " -DBP_DIV_FP64",
             has_fp64 ? " -DBP_HAVE_FP64" : "");
    *max_alloc = (size_t)alloc;
    return BP_OK;
}
