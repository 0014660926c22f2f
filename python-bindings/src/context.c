/* bitplane.Context: a backend, its thread pool and scratch. */
#include "pybp.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    bp_backend backend;
} backends[] = {
    {"auto", BP_BACKEND_AUTO},
    {"cpu", BP_BACKEND_CPU},
    {"cuda", BP_BACKEND_CUDA},
    {"opencl", BP_BACKEND_OPENCL},
};

static const struct {
    const char *name;
    bp_gpu_kernel kernel;
} gpu_kernels[] = {
    {"auto", BP_GPU_KERNEL_AUTO},
    {"popcount", BP_GPU_KERNEL_POPCOUNT},
    {"mma", BP_GPU_KERNEL_MMA},
};

const char *pybp_backend_name(bp_backend backend) {
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (backends[i].backend == backend)
            return backends[i].name;
    return "unknown";
}

/* Look a name up in one of the tables above; InvalidArgumentError lists the choices. */
#define LOOKUP(table, field, what, text, out)                                                      \
    do {                                                                                           \
        size_t i_;                                                                                 \
        for (i_ = 0; i_ < sizeof table / sizeof table[0]; i_++)                                    \
            if (!strcmp(text, table[i_].name)) {                                                   \
                *(out) = table[i_].field;                                                          \
                break;                                                                             \
            }                                                                                      \
        if (i_ == sizeof table / sizeof table[0]) {                                                \
            char choices_[256] = "";                                                               \
            size_t len_ = 0;                                                                       \
            for (i_ = 0; i_ < sizeof table / sizeof table[0] && len_ < sizeof choices_; i_++)      \
                len_ += (size_t)snprintf(choices_ + len_, sizeof choices_ - len_, "%s'%s'",        \
                                         i_ ? ", " : "", table[i_].name);                          \
            return pybp_raise_format(BP_ERR_INVALID_ARGUMENT, "%s must be one of %s, got '%s'",    \
                                     what, choices_, text);                                        \
        }                                                                                          \
    } while (0)

static PyObject *context_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"backend",  "threads",    "cpu_kernel", "device",
                             "platform", "gpu_kernel", NULL};
    const char *backend = "cpu", *cpu_kernel = "auto", *gpu_kernel = "auto";
    bp_context_options opt = BP_CONTEXT_OPTIONS_INIT;
    if (!pybp_parse_args(args, kwargs, "|sisiis:Context", kwlist, &backend, &opt.threads,
                         &cpu_kernel, &opt.device, &opt.platform, &gpu_kernel))
        return NULL;
    LOOKUP(backends, backend, "backend", backend, &opt.backend);
    /* The library's own table of CPU path names (the one BP_CPU uses). */
    if (bp_cpu_kernel_from_name(cpu_kernel, &opt.cpu_kernel) != BP_OK)
        return pybp_raise_format(BP_ERR_INVALID_ARGUMENT, "cpu_kernel: %s", bp_last_error());
    LOOKUP(gpu_kernels, kernel, "gpu_kernel", gpu_kernel, &opt.gpu_kernel);

    PyBpContext *self = (PyBpContext *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    bp_status st;
    bp_context *ctx = NULL;
    /* Loading a plugin and starting threads can take a while. */
    PYBP_NOGIL(st, bp_context_create(&opt, &ctx));
    if (st != BP_OK) {
        Py_DECREF(self);
        return pybp_raise(st);
    }
    self->ctx = ctx;
    return (PyObject *)self;
}

static void context_dealloc(PyBpContext *self) {
    bp_context_destroy(self->ctx);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *context_backend(PyBpContext *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(pybp_backend_name(bp_context_backend(self->ctx)));
}

static PyObject *context_threads(PyBpContext *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(bp_context_threads(self->ctx));
}

static PyObject *context_cpu_kernel_name(PyBpContext *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"act_bits", "cols", "batch", NULL};
    int act_bits = 8;
    Py_ssize_t cols = 512, batch = 1;
    if (!pybp_parse_args(args, kwargs, "|inn:cpu_kernel_name", kwlist, &act_bits, &cols, &batch))
        return NULL;
    if (cols < 0 || batch < 0) {
        return pybp_raise_format(BP_ERR_INVALID_ARGUMENT, "cols and batch must be >= 0");
    }
    const char *name = bp_context_cpu_kernel_name(self->ctx, act_bits, (size_t)cols, (size_t)batch);
    if (!name)
        return pybp_raise(BP_ERR_INVALID_ARGUMENT);
    return PyUnicode_FromString(name);
}

static PyObject *context_repr(PyBpContext *self) {
    return PyUnicode_FromFormat("<bitplane.Context backend='%s' threads=%d>",
                                pybp_backend_name(bp_context_backend(self->ctx)),
                                bp_context_threads(self->ctx));
}

static PyGetSetDef context_getset[] = {
    {"backend", (getter)context_backend, NULL,
     "The backend the context runs on: 'cpu', 'cuda' or 'opencl'.", NULL},
    {"threads", (getter)context_threads, NULL, "Number of host worker threads (>= 1).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef context_methods[] = {
    {"cpu_kernel_name", (PyCFunction)(void (*)(void))context_cpu_kernel_name,
     METH_VARARGS | METH_KEYWORDS,
     "cpu_kernel_name(act_bits=8, cols=512, batch=1) -> str\n\n"
     "The CPU kernel path this context would use for such a call: 'reference', "
     "'portable', 'avx2', 'avx2-lut', 'avx512', 'avx512-lut', 'avx512-vnni', "
     "'avx512-vnni-batched', 'neon', 'neon-lut' or 'neon-dotprod'."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject PyBpContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bitplane.Context",
    .tp_basicsize = sizeof(PyBpContext),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Context(backend='cpu', threads=0, cpu_kernel='auto', device=0, platform=0, "
              "gpu_kernel='auto')\n\n"
              "A backend with its thread pool and scratch memory.\n\n"
              "backend: 'cpu' (also 'auto'), 'cuda' or 'opencl'. Accelerator backends are "
              "plugins loaded on first use; when one cannot run here, UnsupportedError says "
              "why.\n"
              "threads: host worker threads, 0 = all online cores.\n"
              "cpu_kernel: 'auto', 'reference', 'portable', 'avx2', 'avx2-lut', 'avx-vnni', "
              "'avx512', 'avx512-lut', 'avx512-vnni', 'avx512-vnni-batched' (x86-64), 'neon', "
              "'neon-lut' or 'neon-dotprod' (AArch64) (CPU only).\n"
              "device, platform, gpu_kernel ('auto', 'popcount', 'mma'): accelerator choices.\n\n"
              "Thread-safety: concurrent calls on one context are safe but serialise; use one "
              "context per thread for parallel throughput.",
    .tp_new = context_new,
    .tp_dealloc = (destructor)context_dealloc,
    .tp_repr = (reprfunc)context_repr,
    .tp_getset = context_getset,
    .tp_methods = context_methods,
};

static PyBpContext *default_context;

PyBpContext *pybp_resolve_context(PyObject *context) {
    if (context && context != Py_None) {
        if (!PyObject_TypeCheck(context, &PyBpContext_Type)) {
            PyErr_Format(PyExc_TypeError, "context must be a bitplane.Context or None, got %s",
                         Py_TYPE(context)->tp_name);
            return NULL;
        }
        Py_INCREF(context);
        return (PyBpContext *)context;
    }
    /* Created on first use, under the GIL, and kept for the process. */
    if (!default_context) {
        PyObject *args = PyTuple_New(0);
        if (!args)
            return NULL;
        PyBpContext *made = (PyBpContext *)context_new(&PyBpContext_Type, args, NULL);
        Py_DECREF(args);
        if (!made)
            return NULL;
        /* Creation releases the GIL: another thread may have won meanwhile. */
        if (!default_context)
            default_context = made;
        else
            Py_DECREF(made);
    }
    Py_INCREF(default_context);
    return default_context;
}
