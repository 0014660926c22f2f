/* Saving and loading library objects (matrices, RNNs) from Python: files and
 * bytes, with the GIL released around the library call. Each object type
 * supplies its entry points as a pybp_persist table. */
#include "pybp.h"

PyObject *pybp_persist_save(const pybp_persist *ops, const void *obj, PyObject *path_arg) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(path_arg, &path))
        return NULL;
    bp_status st;
    const char *p = PyBytes_AS_STRING(path);
    PYBP_NOGIL(st, ops->save(obj, p));
    Py_DECREF(path);
    if (st != BP_OK)
        return pybp_raise(st);
    Py_RETURN_NONE;
}

PyObject *pybp_persist_load(const pybp_persist *ops, PyTypeObject *type, PyObject *args,
                            PyObject *kwargs) {
    static char *kwlist[] = {"path", "context", NULL};
    PyObject *path = NULL, *context_obj = Py_None;
    if (!pybp_parse_args(args, kwargs, "O&|O:load", kwlist, PyUnicode_FSConverter, &path,
                         &context_obj))
        return NULL;
    PyBpContext *context = pybp_resolve_context(context_obj);
    if (!context) {
        Py_DECREF(path);
        return NULL;
    }
    void *obj = NULL;
    bp_status st;
    const char *p = PyBytes_AS_STRING(path);
    PYBP_NOGIL(st, ops->load(context->ctx, p, &obj));
    Py_DECREF(path);
    PyObject *result = st == BP_OK ? ops->wrap(type, obj, context) : pybp_raise(st);
    Py_DECREF(context);
    return result;
}

PyObject *pybp_persist_to_bytes(const pybp_persist *ops, const void *obj) {
    size_t needed = 0;
    bp_status st = ops->serialize(obj, NULL, 0, &needed);
    if (st != BP_OK)
        return pybp_raise(st);
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)needed);
    if (!bytes)
        return NULL;
    char *buf = PyBytes_AS_STRING(bytes);
    PYBP_NOGIL(st, ops->serialize(obj, buf, needed, &needed));
    if (st != BP_OK) {
        Py_DECREF(bytes);
        return pybp_raise(st);
    }
    return bytes;
}

PyObject *pybp_persist_from_bytes(const pybp_persist *ops, PyTypeObject *type, PyObject *args,
                                  PyObject *kwargs) {
    static char *kwlist[] = {"data", "context", NULL};
    Py_buffer data;
    PyObject *context_obj = Py_None;
    if (!pybp_parse_args(args, kwargs, "y*|O:from_bytes", kwlist, &data, &context_obj))
        return NULL;
    PyBpContext *context = pybp_resolve_context(context_obj);
    if (!context) {
        PyBuffer_Release(&data);
        return NULL;
    }
    void *obj = NULL;
    bp_status st;
    PYBP_NOGIL(st, ops->deserialize(context->ctx, data.buf, (size_t)data.len, &obj));
    PyBuffer_Release(&data);
    PyObject *result = st == BP_OK ? ops->wrap(type, obj, context) : pybp_raise(st);
    Py_DECREF(context);
    return result;
}
