/* float32 arrays through the buffer protocol: checked, never copied. */
#include "pybp.h"

#include <stdint.h>
#include <string.h>

/* numpy dtype names for the buffer formats a caller is likely to pass. */
static const char *format_name(const char *f) {
    static const struct {
        const char *format, *name;
    } names[] = {{"d", "float64"},
                 {"e", "float16"},
                 {"g", "longdouble"},
                 {"b", "int8"},
                 {"B", "uint8"},
                 {"h", "int16"},
                 {"H", "uint16"},
                 {"i", "int32"},
                 {"I", "uint32"},
                 {"l", "int64"},
                 {"L", "uint64"},
                 {"q", "int64"},
                 {"Q", "uint64"},
                 {"?", "bool"},
                 {"Zf", "complex64"},
                 {"Zd", "complex128"},
                 {">f", "big-endian float32"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(f, names[i].format))
            return names[i].name;
    return "an unsupported type";
}

static int is_native_float32(const char *f) {
    if (!f)
        return 0; /* no format means unsigned bytes */
    if (f[0] == '@' || f[0] == '=')
        f++;
#if PY_BIG_ENDIAN
    else if (f[0] == '>' || f[0] == '!')
        f++;
#else
    else if (f[0] == '<')
        f++;
#endif
    return !strcmp(f, "f");
}

const char *pybp_shape_str(const pybp_array *a, char *buf, size_t size) {
    const Py_buffer *v = &a->view;
    if (v->ndim == 1)
        PyOS_snprintf(buf, size, "(%zd,)", v->shape[0]);
    else if (v->ndim == 2)
        PyOS_snprintf(buf, size, "(%zd, %zd)", v->shape[0], v->shape[1]);
    else
        PyOS_snprintf(buf, size, "%d-dimensional", v->ndim);
    return buf;
}

void pybp_array_release(pybp_array *a) {
    if (a->held)
        PyBuffer_Release(&a->view);
    a->held = 0;
}

static int fail(pybp_array *a, PyObject *type, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    PyOS_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pybp_array_release(a);
    PyErr_SetString(type, msg);
    return -1;
}

int pybp_array_get(PyObject *obj, const char *name, int mode, int min_ndim, int max_ndim,
                   pybp_array *a) {
    memset(a, 0, sizeof *a);
    if (!PyObject_CheckBuffer(obj))
        return fail(a, PyExc_TypeError,
                    "%s must be a float32 array (numpy.ndarray or another buffer), got %s", name,
                    Py_TYPE(obj)->tp_name);
    if (PyObject_GetBuffer(obj, &a->view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        /* Keep the exporter's own reason, prefixed with the argument. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_Format(PyExc_TypeError, "%s: cannot take its buffer without a copy (%S)", name,
                     value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    a->held = 1;
    Py_buffer *v = &a->view;
    if (!is_native_float32(v->format) || v->itemsize != 4)
        return fail(a, PyExc_TypeError, "%s must have dtype float32, got %s (buffer format '%s')",
                    name, v->format ? format_name(v->format) : "uint8",
                    v->format ? v->format : "B");
    if (v->ndim < min_ndim || v->ndim > max_ndim) {
        if (min_ndim == max_ndim)
            return fail(a, pybp_error_type(BP_ERR_INVALID_ARGUMENT),
                        "%s must be %d-dimensional, got %d dimensions", name, min_ndim, v->ndim);
        return fail(a, pybp_error_type(BP_ERR_INVALID_ARGUMENT),
                    "%s must be %d- or %d-dimensional, got %d dimensions", name, min_ndim, max_ndim,
                    v->ndim);
    }
    if (mode == PYBP_WRITE && v->readonly)
        return fail(a, pybp_error_type(BP_ERR_INVALID_ARGUMENT),
                    "%s must be writable, got a read-only array", name);
    if ((uintptr_t)v->buf % sizeof(float))
        return fail(a, pybp_error_type(BP_ERR_INVALID_ARGUMENT),
                    "%s must be aligned to 4 bytes, got address %p", name, v->buf);
    a->ndim = v->ndim;
    Py_ssize_t n0 = v->ndim == 2 ? v->shape[0] : 1, n1 = v->shape[v->ndim - 1];
    Py_ssize_t inner = v->strides[v->ndim - 1];
    if (n1 > 1 && inner != 4)
        return fail(a, pybp_error_type(BP_ERR_INVALID_ARGUMENT),
                    "%s must be contiguous in its last dimension (stride 4 bytes), got stride %zd; "
                    "pass numpy.ascontiguousarray(%s) to copy it",
                    name, inner, name);
    Py_ssize_t ld = n1;
    if (v->ndim == 2 && n0 > 1) {
        Py_ssize_t outer = v->strides[0];
        if (outer < n1 * 4 || outer % 4)
            return fail(a, pybp_error_type(BP_ERR_INVALID_ARGUMENT),
                        "%s must have a row stride that is a positive multiple of 4 bytes and "
                        ">= %zd (the row length %zd times 4), got %zd; pass "
                        "numpy.ascontiguousarray(%s) to copy it",
                        name, n1 * 4, n1, outer, name);
        ld = outer / 4;
    }
    a->n0 = (size_t)n0;
    a->n1 = (size_t)n1;
    a->ld = (size_t)(ld > 0 ? ld : 1);
    a->data = v->buf;
    return 0;
}

static PyObject *numpy_empty, *numpy_float32;

PyObject *pybp_empty_f32(Py_ssize_t d0, Py_ssize_t d1) {
    if (!numpy_empty) {
        PyObject *np = PyImport_ImportModule("numpy");
        if (!np)
            return NULL;
        numpy_empty = PyObject_GetAttrString(np, "empty");
        numpy_float32 = PyObject_GetAttrString(np, "float32");
        Py_DECREF(np);
        if (!numpy_empty || !numpy_float32) {
            Py_CLEAR(numpy_empty);
            Py_CLEAR(numpy_float32);
            return NULL;
        }
    }
    PyObject *shape = d1 < 0 ? Py_BuildValue("(n)", d0) : Py_BuildValue("(nn)", d0, d1);
    if (!shape)
        return NULL;
    PyObject *out = PyObject_CallFunctionObjArgs(numpy_empty, shape, numpy_float32, NULL);
    Py_DECREF(shape);
    return out;
}
