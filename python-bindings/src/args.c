/*
 * Argument parsing with the checks PyArg_ParseTupleAndKeywords leaves out.
 *
 * Its integer units take bool (True is an int subclass, so quantize(w,
 * bits=True) would quantize to 1 bit), "K" masks instead of checking its
 * range (rotation_seed=-1 became 2^64 - 1), and "p" takes any object's
 * truth value (split_gates="no" is true). pybp_parse_args looks at the
 * objects bound to those units first and raises a TypeError or ValueError
 * that names the function and the argument; then it parses as usual.
 */
#include "pybp.h"

#include <stdbool.h>
#include <string.h>

/* One unit of a format string: its code, and the position after it. */
static const char *next_unit(const char *f, char *code) {
    while (*f == '|' || *f == '$')
        f++;
    if (*f == '\0' || *f == ':' || *f == ';') {
        *code = '\0';
        return f;
    }
    *code = *f++;
    while (*f == '*' || *f == '#' || *f == '&' || *f == '!')
        f++;
    return f;
}

/* The object bound to the i-th parameter (borrowed), or NULL if not given. */
static PyObject *bound(PyObject *args, PyObject *kwargs, char **kwlist, size_t i) {
    if ((Py_ssize_t)i < PyTuple_GET_SIZE(args))
        return PyTuple_GET_ITEM(args, (Py_ssize_t)i);
    return kwargs && kwlist[i] ? PyDict_GetItemString(kwargs, kwlist[i]) : NULL;
}

static bool is_zero_or_one(PyObject *o) {
    if (!PyLong_Check(o))
        return false;
    int overflow;
    long v = PyLong_AsLongAndOverflow(o, &overflow);
    return !overflow && (v == 0 || v == 1);
}

/* numpy.bool (numpy 2) or numpy.bool_ (numpy 1), without importing numpy. */
static bool is_numpy_bool(PyObject *o) {
    const char *t = Py_TYPE(o)->tp_name;
    return strcmp(t, "numpy.bool") == 0 || strcmp(t, "numpy.bool_") == 0;
}

static int check_unit(char code, PyObject *o, const char *func, const char *name) {
    switch (code) {
    case 'b':
    case 'h':
    case 'i':
    case 'l':
    case 'n':
    case 'L':
    case 'I':
    case 'k':
    case 'K':
        if (PyBool_Check(o)) {
            PyErr_Format(PyExc_TypeError, "%s(): %s must be an int, not bool", func, name);
            return -1;
        }
        if (code == 'K' && PyLong_Check(o)) {
            /* The full unsigned 64-bit range, checked (K itself masks). */
            unsigned long long v = PyLong_AsUnsignedLongLong(o);
            if (v == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s(): %s must be in [0, 2**64), got %R", func, name,
                             o);
                return -1;
            }
        }
        return 0;
    case 'p':
        if (!PyBool_Check(o) && !is_numpy_bool(o) && !is_zero_or_one(o)) {
            PyErr_Format(PyExc_TypeError, "%s(): %s must be a bool, not %s", func, name,
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

int pybp_parse_args(PyObject *args, PyObject *kwargs, const char *format, char **kwlist, ...) {
    const char *colon = strchr(format, ':');
    const char *func = colon ? colon + 1 : "function";
    const char *f = format;
    for (size_t i = 0; kwlist[i]; i++) {
        char code;
        f = next_unit(f, &code);
        if (!code)
            break;
        PyObject *o = bound(args, kwargs, kwlist, i);
        if (o && check_unit(code, o, func, kwlist[i]) < 0)
            return 0;
    }
    va_list ap;
    va_start(ap, kwlist);
    int ok = PyArg_VaParseTupleAndKeywords(args, kwargs, format, kwlist, ap);
    va_end(ap);
    return ok;
}
