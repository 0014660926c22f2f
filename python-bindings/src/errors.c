/* Library statuses as exceptions: bitplane.Error (a RuntimeError) and one
 * subclass per status, each also deriving from the built-in exception a
 * Python caller would expect (ValueError for bad arguments, MemoryError,
 * OSError for file errors). The message is bp_last_error(); the status code
 * is the class attribute and the instance attribute `status`. */
#include "pybp.h"

#include <stdarg.h>

typedef struct {
    bp_status status;
    const char *name; /* class name inside the module */
    PyObject **also;  /* the built-in base besides Error, or NULL */
    const char *doc;
    PyObject *type; /* created at module init */
} status_class;

static status_class classes[] = {
    {BP_ERR_INVALID_ARGUMENT, "InvalidArgumentError", &PyExc_ValueError,
     "An argument is invalid (BP_ERR_INVALID_ARGUMENT).", NULL},
    {BP_ERR_OUT_OF_RANGE, "OutOfRangeError", &PyExc_ValueError,
     "A value is out of its range, e.g. planes > bits (BP_ERR_OUT_OF_RANGE).", NULL},
    {BP_ERR_SIZE_OVERFLOW, "SizeOverflowError", &PyExc_ValueError,
     "A size is too large (BP_ERR_SIZE_OVERFLOW).", NULL},
    {BP_ERR_NON_FINITE, "NonFiniteError", &PyExc_ValueError,
     "NaN or Inf in weights, inputs or bias (BP_ERR_NON_FINITE).", NULL},
    {BP_ERR_OUT_OF_MEMORY, "OutOfMemoryError", &PyExc_MemoryError,
     "The library could not allocate memory (BP_ERR_OUT_OF_MEMORY).", NULL},
    {BP_ERR_UNSUPPORTED, "UnsupportedError", NULL,
     "The backend or kernel cannot run on this build or machine (BP_ERR_UNSUPPORTED).", NULL},
    {BP_ERR_IO, "FileError", &PyExc_OSError, "A file could not be read or written (BP_ERR_IO).",
     NULL},
    {BP_ERR_CORRUPT, "CorruptError", NULL, "Corrupt or truncated matrix data (BP_ERR_CORRUPT).",
     NULL},
    {BP_ERR_VERSION, "VersionError", NULL, "A newer, unsupported file version (BP_ERR_VERSION).",
     NULL},
    {BP_ERR_BACKEND, "BackendError", NULL, "The backend failed (BP_ERR_BACKEND).", NULL},
    {BP_ERR_INTERNAL, "InternalError", NULL, "An internal error (BP_ERR_INTERNAL).", NULL},
};

static PyObject *error_base;

static int set_status(PyObject *type, bp_status st) {
    PyObject *code = PyLong_FromLong((long)st);
    if (!code)
        return -1;
    int rc = PyObject_SetAttrString(type, "status", code);
    Py_DECREF(code);
    return rc;
}

int pybp_errors_init(PyObject *module) {
    error_base = PyErr_NewExceptionWithDoc(
        "bitplane.Error",
        "Base class of every error the bitplane library reports. `status` is the library's "
        "bp_status code and str(e) its message (bp_last_error()).",
        PyExc_RuntimeError, NULL);
    if (!error_base || set_status(error_base, BP_ERR_INTERNAL) < 0)
        return -1;
    Py_INCREF(error_base);
    if (PyModule_AddObject(module, "Error", error_base) < 0) {
        Py_DECREF(error_base);
        return -1;
    }
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        status_class *c = &classes[i];
        PyObject *bases =
            c->also ? PyTuple_Pack(2, error_base, *c->also) : PyTuple_Pack(1, error_base);
        if (!bases)
            return -1;
        char qualified[64];
        PyOS_snprintf(qualified, sizeof qualified, "bitplane.%s", c->name);
        c->type = PyErr_NewExceptionWithDoc(qualified, c->doc, bases, NULL);
        Py_DECREF(bases);
        if (!c->type || set_status(c->type, c->status) < 0)
            return -1;
        Py_INCREF(c->type);
        if (PyModule_AddObject(module, c->name, c->type) < 0) {
            Py_DECREF(c->type);
            return -1;
        }
    }
    return 0;
}

PyObject *pybp_error_type(bp_status st) {
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (classes[i].status == st)
            return classes[i].type;
    return error_base;
}

static PyObject *raise_message(bp_status st, const char *msg) {
    PyObject *type = pybp_error_type(st);
    PyObject *exc = PyObject_CallFunction(type, "s", msg);
    if (!exc)
        return NULL;
    PyObject *code = PyLong_FromLong((long)st);
    if (code) {
        PyObject_SetAttrString(exc, "status", code);
        Py_DECREF(code);
    }
    PyErr_SetObject(type, exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *pybp_raise(bp_status st) {
    const char *msg = bp_last_error();
    return raise_message(st, msg[0] ? msg : bp_status_string(st));
}

PyObject *pybp_raise_format(bp_status st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    PyOS_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return raise_message(st, msg);
}
