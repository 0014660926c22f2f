/* The OpenCL C sources, embedded at build time (embed_sources.cmake). */
#ifndef BP_OCL_SOURCES_H
#define BP_OCL_SOURCES_H

typedef struct bp_ocl_source {
    const char *name; /* file name under opencl/kernels/ */
    const char *text; /* NUL-terminated */
} bp_ocl_source;

/* In program order: common.cl first. */
extern const bp_ocl_source bp__ocl_sources[];
extern const unsigned bp__ocl_source_count;

#endif
