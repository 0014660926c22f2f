/* The module bitplane._bitplane: types, exceptions and small functions. */
#include "pybp.h"

static PyObject *fn_version(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(bp_version());
}

static PyObject *fn_default_context(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return (PyObject *)pybp_resolve_context(Py_None);
}

static PyObject *fn_status_string(PyObject *self, PyObject *arg) {
    (void)self;
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(bp_status_string((bp_status)code));
}

/* Every CPU kernel name the library knows, in enum order, from its own
 * table (bp_cpu_kernel_to_name), so Python never keeps a copy. */
static PyObject *fn_cpu_kernel_names(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *names = PyList_New(0);
    for (int v = 0; names && v < 256; v++) {
        const char *name = bp_cpu_kernel_to_name((bp_cpu_kernel)v);
        PyObject *s = name ? PyUnicode_FromString(name) : NULL;
        if (name && (!s || PyList_Append(names, s) != 0))
            Py_CLEAR(names);
        Py_XDECREF(s);
    }
    PyObject *t = names ? PyList_AsTuple(names) : NULL;
    Py_XDECREF(names);
    return t;
}

static PyMethodDef module_methods[] = {
    {"version", fn_version, METH_NOARGS,
     "version() -> str\n\nThe C library's version, 'MAJOR.MINOR.PATCH'."},
    {"default_context", fn_default_context, METH_NOARGS,
     "default_context() -> Context\n\n"
     "The process-wide default CPU context (all cores), created on first use. Used wherever "
     "context=None."},
    {"cpu_kernel_names", fn_cpu_kernel_names, METH_NOARGS,
     "cpu_kernel_names() -> tuple[str, ...]\n\nEvery CPU kernel name Context(cpu_kernel=...) "
     "accepts, from the library's table; whether a path can run here is checked when a "
     "context is created."},
    {"_row_planes_from_scores", (PyCFunction)(void (*)(void))pybp_row_planes_from_scores,
     METH_VARARGS | METH_KEYWORDS,
     "_row_planes_from_scores(scores, budget, classes, bits) -> numpy.ndarray\n\n"
     "bp_row_planes_from_scores; use bitplane.row_planes_from_scores."},
    {"status_string", fn_status_string, METH_O,
     "status_string(code) -> str\n\nThe library's short description of a status code."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bitplane._bitplane",
    .m_doc = "C extension of bitplane: bit-serial (PrecisionBatching) inference. Use the "
             "`bitplane` package, which re-exports everything here.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__bitplane(void) {
    if (PyType_Ready(&PyBpContext_Type) < 0 || PyType_Ready(&PyBpMatrix_Type) < 0 ||
        PyType_Ready(&PyBpRNN_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    Py_INCREF(&PyBpContext_Type);
    if (PyModule_AddObject(m, "Context", (PyObject *)&PyBpContext_Type) < 0) {
        Py_DECREF(&PyBpContext_Type);
        goto fail;
    }
    Py_INCREF(&PyBpMatrix_Type);
    if (PyModule_AddObject(m, "Matrix", (PyObject *)&PyBpMatrix_Type) < 0) {
        Py_DECREF(&PyBpMatrix_Type);
        goto fail;
    }
    Py_INCREF(&PyBpRNN_Type);
    if (PyModule_AddObject(m, "RNN", (PyObject *)&PyBpRNN_Type) < 0) {
        Py_DECREF(&PyBpRNN_Type);
        goto fail;
    }
    if (pybp_errors_init(m) < 0 || PyModule_AddIntConstant(m, "MAX_BITS", BP_MAX_BITS) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_BITS", BP_DEFAULT_BITS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ACT_BITS", BP_MAX_ACT_BITS) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
