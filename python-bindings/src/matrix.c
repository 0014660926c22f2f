/* bitplane.Matrix: a quantized weight matrix and the calls on it. */
#include "pybp.h"

#include <limits.h>
#include <string.h>

static const char *method_name(bp_quant_method method) {
    return method == BP_QUANT_RESIDUAL ? "residual" : "uniform";
}

static PyObject *wrap(PyTypeObject *type, bp_matrix *m, PyBpContext *context) {
    PyBpMatrix *self = (PyBpMatrix *)type->tp_alloc(type, 0);
    if (!self) {
        bp_matrix_destroy(m);
        return NULL;
    }
    self->m = m;
    Py_INCREF(context);
    self->context = context;
    return (PyObject *)self;
}

/* An integer's value object: anything with __index__ (int, numpy integers)
 * but bool, which has it too and would read True as 1 plane; NULL with no
 * exception set for a bool, as PyNumber_Index fails for other types. */
static PyObject *count_index(PyObject *obj) {
    return PyBool_Check(obj) ? NULL : PyNumber_Index(obj);
}

/* None -> dflt; anything with __index__ (int, numpy integers) but bool ->
 * itself, so 0 keeps the library's meaning (all planes, default act_bits).
 * Floats, bools and other types raise TypeError; range checks are the
 * library's, with its message. */
static int int_or_none(PyObject *obj, int dflt, const char *name, int *out) {
    if (!obj || obj == Py_None) {
        *out = dflt;
        return 0;
    }
    PyObject *index = count_index(obj);
    if (!index) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be an int or None, got %s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < INT_MIN || v > INT_MAX) {
        pybp_raise_format(BP_ERR_OUT_OF_RANGE, "%s is out of range (it must fit a C int)", name);
        return -1;
    }
    *out = (int)v;
    return 0;
}

uint8_t *pybp_row_planes_get(PyObject *obj, size_t rows, const char *name, const char *of) {
    PyObject *seq = PySequence_Fast(obj, "row_planes must be a sequence of ints or None");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if ((size_t)n != rows) {
        pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                          "%s must have one entry per row of %s (%zu), got %zd", name, of, rows, n);
        Py_DECREF(seq);
        return NULL;
    }
    uint8_t *out = PyMem_Malloc(n > 0 ? (size_t)n : 1);
    if (!out) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *index = count_index(item);
        long v = index ? PyLong_AsLong(index) : -1;
        Py_XDECREF(index);
        if (!index || (v == -1 && PyErr_Occurred())) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "%s[%zd] must be an int, got %s", name, i,
                             Py_TYPE(item)->tp_name);
            }
            PyMem_Free(out);
            Py_DECREF(seq);
            return NULL;
        }
        if (v < 0 || v > 255) {
            pybp_raise_format(BP_ERR_OUT_OF_RANGE, "%s[%zd] must be in 1..bits, got %ld", name, i,
                              v);
            PyMem_Free(out);
            Py_DECREF(seq);
            return NULL;
        }
        out[i] = (uint8_t)v;
    }
    Py_DECREF(seq);
    return out;
}

PyObject *pybp_u8_array(const uint8_t *data, size_t n) {
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)n);
    PyObject *np = bytes ? PyImport_ImportModule("numpy") : NULL;
    PyObject *view = np ? PyObject_CallMethod(np, "frombuffer", "Os", bytes, "uint8") : NULL;
    PyObject *out = view ? PyObject_CallMethod(view, "copy", NULL) : NULL;
    Py_XDECREF(view);
    Py_XDECREF(np);
    Py_XDECREF(bytes);
    return out;
}

int pybp_quant_options_set(bp_quant_options *opt, const char *method, int group_size, int rotation,
                           unsigned long long rotation_seed) {
    /* Python spells "none" as 0; C keeps 0 for the default. */
    if (group_size < 0) {
        PyErr_Format(
            PyExc_ValueError,
            "group_size must be 0 (one scale per row) or a power of two in 32..4096, got %d",
            group_size);
        return -1;
    }
    if (rotation < 0 && rotation != PYBP_ROTATION_DEFAULT) {
        PyErr_Format(PyExc_ValueError,
                     "rotation must be 0 (none) or a power-of-four block in 4..4096, got %d",
                     rotation);
        return -1;
    }
    if (!strcmp(method, "uniform"))
        opt->method = BP_QUANT_UNIFORM;
    else if (!strcmp(method, "residual"))
        opt->method = BP_QUANT_RESIDUAL;
    else {
        pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                          "method must be 'uniform' or 'residual', got '%s'", method);
        return -1;
    }
    opt->group_size = group_size ? group_size : BP_GROUP_PER_ROW;
    opt->rotation = rotation == PYBP_ROTATION_DEFAULT ? 0 : rotation ? rotation : BP_ROTATION_NONE;
    opt->rotation_seed = (uint64_t)rotation_seed;
    return 0;
}

static PyObject *matrix_quantize(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"w",
                             "bits",
                             "method",
                             "clip",
                             "group_size",
                             "rotation",
                             "rotation_seed",
                             "calibration",
                             "calibration_planes",
                             "context",
                             "nonnegative_inputs",
                             "row_planes",
                             NULL};
    PyObject *cal_obj = Py_None, *row_planes_obj = Py_None;
    PyObject *w_obj, *context_obj = Py_None;
    const char *method = "uniform";
    bp_quant_options opt = BP_QUANT_OPTIONS_INIT;
    opt.bits = BP_DEFAULT_BITS;
    /* rotation not given: the library's default (none for non-negative
     * inputs). */
    int group_size = BP_DEFAULT_GROUP_SIZE, rotation = PYBP_ROTATION_DEFAULT, nonnegative = 0;
    unsigned long long seed = 0;
    if (!pybp_parse_args(args, kwargs, "O|isfiiKOiOpO:quantize", kwlist, &w_obj, &opt.bits, &method,
                         &opt.clip, &group_size, &rotation, &seed, &cal_obj,
                         &opt.calibration_planes, &context_obj, &nonnegative, &row_planes_obj))
        return NULL;
    opt.nonnegative_inputs = nonnegative;
    if (pybp_quant_options_set(&opt, method, group_size, rotation, seed) < 0)
        return NULL;
    PyBpContext *context = pybp_resolve_context(context_obj);
    if (!context)
        return NULL;
    pybp_array w, cal = {0};
    if (pybp_array_get(w_obj, "w", PYBP_READ, 2, 2, &w) < 0) {
        Py_DECREF(context);
        return NULL;
    }
    if (cal_obj != Py_None) {
        /* Sample activations, one per row: (count, cols). */
        if (pybp_array_get(cal_obj, "calibration", PYBP_READ, 2, 2, &cal) < 0) {
            pybp_array_release(&w);
            Py_DECREF(context);
            return NULL;
        }
        if (cal.n1 != w.n1) {
            PyErr_Format(PyExc_ValueError,
                         "calibration must have shape (count, %zu) like w's columns, got "
                         "(%zu, %zu)",
                         w.n1, cal.n0, cal.n1);
            pybp_array_release(&w);
            pybp_array_release(&cal);
            Py_DECREF(context);
            return NULL;
        }
        opt.calibration = cal.data;
        opt.calibration_count = cal.n0;
        opt.calibration_ld = cal.ld;
    }
    uint8_t *row_planes = NULL;
    if (row_planes_obj != Py_None) {
        row_planes = pybp_row_planes_get(row_planes_obj, w.n0, "row_planes", "w");
        if (!row_planes) {
            pybp_array_release(&w);
            if (cal_obj != Py_None)
                pybp_array_release(&cal);
            Py_DECREF(context);
            return NULL;
        }
        opt.row_planes = row_planes;
    }
    bp_matrix *m = NULL;
    bp_status st;
    PYBP_NOGIL(st, bp_matrix_quantize(context->ctx, w.data, w.n0, w.n1, w.ld, &opt, &m));
    PyMem_Free(row_planes);
    pybp_array_release(&w);
    if (cal_obj != Py_None)
        pybp_array_release(&cal);
    PyObject *result = st == BP_OK ? wrap(type, m, context) : pybp_raise(st);
    Py_DECREF(context);
    return result;
}

int *pybp_column_planes_get(PyObject *obj, size_t batch) {
    PyObject *seq = PySequence_Fast(obj, "column_planes must be a sequence of ints or None");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if ((size_t)n != batch) {
        pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                          "column_planes must have one entry per column of x (%zu), got %zd", batch,
                          n);
        Py_DECREF(seq);
        return NULL;
    }
    int *planes = PyMem_New(int, n > 0 ? n : 1);
    if (!planes) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *index = count_index(item); /* numpy integers too; not floats, bools */
        long v = index ? PyLong_AsLong(index) : -1;
        Py_XDECREF(index);
        if (!index || (v == -1 && PyErr_Occurred()) || v < INT_MIN || v > INT_MAX) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "column_planes[%zd] must be an int, got %s", i,
                             Py_TYPE(item)->tp_name);
            }
            PyMem_Free(planes);
            Py_DECREF(seq);
            return NULL;
        }
        planes[i] = (int)v;
    }
    Py_DECREF(seq);
    return planes;
}

/* None, "none" or "relu" as a bp_activation; -1 with an exception set. */
static int activation_get(PyObject *obj, bp_activation *out) {
    *out = BP_ACTIVATION_NONE;
    if (obj == Py_None)
        return 0;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "activation must be None, 'none' or 'relu', got %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(obj);
    if (!name)
        return -1;
    if (strcmp(name, "relu") == 0)
        *out = BP_ACTIVATION_RELU;
    else if (strcmp(name, "none") != 0) {
        pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                          "activation must be None, 'none' or 'relu', got '%s'", name);
        return -1;
    }
    return 0;
}

static PyObject *matrix_gemm(PyBpMatrix *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x",         "planes", "act_bits", "bias",       "column_planes",
                             "act_scale", "out",    "context",  "activation", NULL};
    PyObject *x_obj, *planes_obj = Py_None, *act_bits_obj = Py_None, *bias_obj = Py_None,
                     *cp_obj = Py_None, *out_obj = Py_None, *context_obj = Py_None,
                     *activation_obj = Py_None;
    bp_run_options run = BP_RUN_OPTIONS_INIT;
    bp_activation activation;
    if (!pybp_parse_args(args, kwargs, "O|OOOOfOOO:gemm", kwlist, &x_obj, &planes_obj,
                         &act_bits_obj, &bias_obj, &cp_obj, &run.act_scale, &out_obj, &context_obj,
                         &activation_obj))
        return NULL;
    if (activation_get(activation_obj, &activation) < 0)
        return NULL;
    /* None and 0 both mean what 0 means in C: all planes, 8 activation bits. */
    if (int_or_none(planes_obj, 0, "planes", &run.planes) < 0 ||
        int_or_none(act_bits_obj, 0, "act_bits", &run.act_bits) < 0)
        return NULL;

    size_t rows = bp_matrix_rows(self->m), cols = bp_matrix_cols(self->m);
    PyBpContext *context =
        context_obj == Py_None ? self->context : pybp_resolve_context(context_obj);
    if (!context)
        return NULL;
    if (context_obj == Py_None)
        Py_INCREF(context);

    PyObject *result = NULL, *out_ref = NULL;
    int *column_planes = NULL;
    char shape[64];
    pybp_array x = {0}, bias = {0}, out = {0};
    if (pybp_array_get(x_obj, "x", PYBP_READ, 1, 2, &x) < 0)
        goto done;
    if (x.n1 != cols) {
        pybp_raise_format(
            BP_ERR_INVALID_ARGUMENT,
            "x must have shape (cols,) or (batch, cols) with cols = %zu, got shape %s", cols,
            pybp_shape_str(&x, shape, sizeof shape));
        goto done;
    }
    size_t batch = x.n0;
    if (bias_obj != Py_None) {
        if (pybp_array_get(bias_obj, "bias", PYBP_READ, 1, 1, &bias) < 0)
            goto done;
        if (bias.n1 != rows) {
            pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                              "bias must have shape (%zu,) (rows), got shape %s", rows,
                              pybp_shape_str(&bias, shape, sizeof shape));
            goto done;
        }
        run.bias = bias.data;
    }
    if (cp_obj != Py_None) {
        if (!(column_planes = pybp_column_planes_get(cp_obj, batch)))
            goto done;
        run.column_planes = column_planes;
    }
    /* The library's batch limit, checked before an output of batch x rows
     * floats is allocated (else an absurd batch is NumPy's MemoryError). */
    if (batch > BP_MAX_DIM) {
        pybp_raise_format(BP_ERR_SIZE_OVERFLOW, "batch must be <= %zu, got %zu", BP_MAX_DIM, batch);
        goto done;
    }
    if (out_obj == Py_None)
        out_ref = pybp_empty_f32((Py_ssize_t)(x.ndim == 1 ? rows : batch),
                                 x.ndim == 1 ? -1 : (Py_ssize_t)rows);
    else {
        out_ref = out_obj;
        Py_INCREF(out_ref);
    }
    if (!out_ref || pybp_array_get(out_ref, "out", PYBP_WRITE, x.ndim, x.ndim, &out) < 0)
        goto done;
    if (out.n1 != rows || out.n0 != batch) {
        if (x.ndim == 1)
            pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                              "out must have shape (%zu,) (rows), got shape %s", rows,
                              pybp_shape_str(&out, shape, sizeof shape));
        else
            pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                              "out must have shape (%zu, %zu) (batch, rows), got shape %s", batch,
                              rows, pybp_shape_str(&out, shape, sizeof shape));
        goto done;
    }
    if (batch == 0) {
        /* An empty batch gives an empty (0, rows) result, as numpy's matmul
         * does; C rejects batch 0, so the run options are checked here with
         * the library's rule and messages. */
        int bits = bp_matrix_bits(self->m);
        if (run.planes < 0 || run.planes > bits)
            pybp_raise_format(BP_ERR_OUT_OF_RANGE, "planes must be 0 (all) or 1..%d, got %d", bits,
                              run.planes);
        else if (run.act_bits < 0 || run.act_bits > PYBP_MAX_ACT_BITS)
            pybp_raise_format(BP_ERR_OUT_OF_RANGE,
                              "act_bits must be 0 (default 8) or 1..%d, got %d", PYBP_MAX_ACT_BITS,
                              run.act_bits);
        else {
            result = out_ref;
            out_ref = NULL;
        }
        goto done;
    }
    bp_status st;
    PYBP_NOGIL(st, bp_gemm_act(context->ctx, self->m, x.data, batch, x.ld, out.data, out.ld, &run,
                               activation));
    if (st != BP_OK)
        pybp_raise(st);
    else {
        result = out_ref;
        out_ref = NULL;
    }
done:
    pybp_array_release(&x);
    pybp_array_release(&bias);
    pybp_array_release(&out);
    PyMem_Free(column_planes);
    Py_XDECREF(out_ref);
    Py_DECREF(context);
    return result;
}

static PyObject *matrix_dequantize(PyBpMatrix *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"planes", "out", NULL};
    PyObject *planes_obj = Py_None, *out_obj = Py_None;
    int planes;
    if (!pybp_parse_args(args, kwargs, "|OO:dequantize", kwlist, &planes_obj, &out_obj) ||
        int_or_none(planes_obj, 0, "planes", &planes) < 0)
        return NULL;
    size_t rows = bp_matrix_rows(self->m), cols = bp_matrix_cols(self->m);
    PyObject *out_ref;
    if (out_obj == Py_None)
        out_ref = pybp_empty_f32((Py_ssize_t)rows, (Py_ssize_t)cols);
    else {
        out_ref = out_obj;
        Py_INCREF(out_ref);
    }
    pybp_array out;
    if (!out_ref)
        return NULL;
    if (pybp_array_get(out_ref, "out", PYBP_WRITE, 2, 2, &out) < 0) {
        Py_DECREF(out_ref);
        return NULL;
    }
    if (out.n0 != rows || out.n1 != cols) {
        char shape[64];
        pybp_raise_format(BP_ERR_INVALID_ARGUMENT,
                          "out must have shape (%zu, %zu) (rows, cols), got %s", rows, cols,
                          pybp_shape_str(&out, shape, sizeof shape));
        pybp_array_release(&out);
        Py_DECREF(out_ref);
        return NULL;
    }
    bp_status st;
    PYBP_NOGIL(st, bp_matrix_dequantize(self->context->ctx, self->m, planes, out.data, out.ld));
    pybp_array_release(&out);
    if (st != BP_OK) {
        Py_DECREF(out_ref);
        return pybp_raise(st);
    }
    return out_ref;
}

static PyObject *matrix_prefix_error(PyBpMatrix *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    double e = bp_matrix_prefix_error(self->m, n < INT_MIN || n > INT_MAX ? -1 : (int)n);
    if (e < 0)
        return pybp_raise(BP_ERR_OUT_OF_RANGE);
    return PyFloat_FromDouble(e);
}

PYBP_PERSIST_TABLE(persist, bp_matrix, wrap)

static PyObject *matrix_save(PyBpMatrix *self, PyObject *arg) {
    return pybp_persist_save(&persist, self->m, arg);
}

static PyObject *matrix_load(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    return pybp_persist_load(&persist, type, args, kwargs);
}

static PyObject *matrix_to_bytes(PyBpMatrix *self, PyObject *unused) {
    (void)unused;
    return pybp_persist_to_bytes(&persist, self->m);
}

static PyObject *matrix_from_bytes(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    return pybp_persist_from_bytes(&persist, type, args, kwargs);
}

/* Pickling goes through the file format (the default context on load). */
static PyObject *matrix_reduce(PyBpMatrix *self, PyObject *unused) {
    (void)unused;
    PyObject *bytes = matrix_to_bytes(self, NULL);
    if (!bytes)
        return NULL;
    PyObject *ctor = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "from_bytes");
    PyObject *result = ctor ? Py_BuildValue("(O(O))", ctor, bytes) : NULL;
    Py_XDECREF(ctor);
    Py_DECREF(bytes);
    return result;
}

static void matrix_dealloc(PyBpMatrix *self) {
    bp_matrix_destroy(self->m);
    Py_XDECREF(self->context);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *matrix_repr(PyBpMatrix *self) {
    return PyUnicode_FromFormat("<bitplane.Matrix %zux%zu, %d planes, %s, backend '%s'>",
                                bp_matrix_rows(self->m), bp_matrix_cols(self->m),
                                bp_matrix_bits(self->m), method_name(bp_matrix_method(self->m)),
                                pybp_backend_name(bp_context_backend(self->context->ctx)));
}

static PyObject *get_rows(PyBpMatrix *self, void *c) {
    (void)c;
    return PyLong_FromSize_t(bp_matrix_rows(self->m));
}
static PyObject *get_cols(PyBpMatrix *self, void *c) {
    (void)c;
    return PyLong_FromSize_t(bp_matrix_cols(self->m));
}
static PyObject *get_bits(PyBpMatrix *self, void *c) {
    (void)c;
    return PyLong_FromLong(bp_matrix_bits(self->m));
}
static PyObject *get_method(PyBpMatrix *self, void *c) {
    (void)c;
    return PyUnicode_FromString(method_name(bp_matrix_method(self->m)));
}
static PyObject *get_group_size(PyBpMatrix *self, void *c) {
    (void)c;
    return PyLong_FromSize_t(bp_matrix_group_size(self->m));
}
static PyObject *get_rotation(PyBpMatrix *self, void *c) {
    (void)c;
    return PyLong_FromLong(bp_matrix_rotation(self->m));
}
static PyObject *get_context(PyBpMatrix *self, void *c) {
    (void)c;
    Py_INCREF(self->context);
    return (PyObject *)self->context;
}

PyObject *pybp_matrix_row_planes(const bp_matrix *m) {
    size_t rows = bp_matrix_rows(m);
    uint8_t *buf = PyMem_Malloc(rows);
    if (!buf)
        return PyErr_NoMemory();
    bp_status st = bp_matrix_row_planes(m, buf);
    PyObject *out = st == BP_OK ? pybp_u8_array(buf, rows) : pybp_raise(st);
    PyMem_Free(buf);
    return out;
}

static PyObject *get_row_planes(PyBpMatrix *self, void *c) {
    (void)c;
    return pybp_matrix_row_planes(self->m);
}

static PyObject *matrix_bytes_read(PyBpMatrix *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"planes", NULL};
    PyObject *planes_obj = Py_None;
    int planes;
    if (!pybp_parse_args(args, kwargs, "|O:bytes_read", kwlist, &planes_obj) ||
        int_or_none(planes_obj, 0, "planes", &planes) < 0)
        return NULL;
    size_t bytes = bp_matrix_bytes_read(self->m, planes);
    return bytes ? PyLong_FromSize_t(bytes) : pybp_raise(BP_ERR_OUT_OF_RANGE);
}

/* Module function: counts from scores (bitplane.row_planes_from_scores
 * wraps it). */
PyObject *pybp_row_planes_from_scores(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"scores", "budget", "classes", "bits", NULL};
    PyObject *scores_obj;
    double budget;
    int classes, bits;
    if (!pybp_parse_args(args, kwargs, "Odii:row_planes_from_scores", kwlist, &scores_obj, &budget,
                         &classes, &bits))
        return NULL;
    pybp_array sc;
    if (pybp_array_get(scores_obj, "scores", PYBP_READ, 1, 1, &sc) < 0)
        return NULL;
    uint8_t *out = PyMem_Malloc(sc.n1 ? sc.n1 : 1);
    if (!out) {
        pybp_array_release(&sc);
        return PyErr_NoMemory();
    }
    bp_status st = bp_row_planes_from_scores(sc.data, sc.n1, bits, budget, classes, out);
    PyObject *result = st == BP_OK ? pybp_u8_array(out, sc.n1) : pybp_raise(st);
    PyMem_Free(out);
    pybp_array_release(&sc);
    return result;
}

static PyGetSetDef matrix_getset[] = {
    {"row_planes", (getter)get_row_planes, NULL,
     "Per-row plane counts (numpy uint8, the rows of w in order): each row uses at most this "
     "many planes; bits for every row when quantized without row_planes.",
     NULL},
    {"rows", (getter)get_rows, NULL, "Output length (rows of W).", NULL},
    {"cols", (getter)get_cols, NULL, "Input length K (columns of W).", NULL},
    {"bits", (getter)get_bits, NULL, "Number of stored planes k.", NULL},
    {"method", (getter)get_method, NULL, "The quantizer: 'uniform' or 'residual'.", NULL},
    {"group_size", (getter)get_group_size, NULL, "Columns per group scale; 0 = one scale per row.",
     NULL},
    {"rotation", (getter)get_rotation, NULL,
     "Block of the randomized Hadamard rotation of K; 0 = none.", NULL},
    {"context", (getter)get_context, NULL,
     "The Context the matrix was made on; gemm uses it unless given another.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define FN(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef matrix_methods[] = {
    {"quantize", FN(matrix_quantize), METH_CLASS | METH_VARARGS | METH_KEYWORDS,
     "Matrix.quantize(w, bits=8, method='uniform', clip=0.0, group_size=32, rotation=256, "
     "rotation_seed=0, calibration=None, calibration_planes=0, context=None, "
     "nonnegative_inputs=False, row_planes=None) -> Matrix\n\n"
     "Quantize w, a float32 array of shape (rows, cols) whose rows are contiguous (any row "
     "stride), into `bits` planes. method: 'uniform' (nested mid-rise grid) or 'residual' "
     "(greedy binary coding). clip: uniform only, ratio in (0, 1]; 0 = automatic. "
     "group_size: columns per 8-bit group scale (a power of two 32..4096; 0 = one scale per "
     "row; groups need cols <= 2^23). rotation: block of the randomized Hadamard rotation of K "
     "(a power of four 4..4096; 0 = none), seeded by rotation_seed; gemm rotates x itself; "
     "not given: 256, or none when nonnegative_inputs is true or every calibration sample is "
     ">= 0 (a rotated non-negative input is signed and loses the unsigned activation mode's "
     "extra bit). "
     "calibration: float32 sample activations (count, cols); uniform only: minimises the "
     "output error on them (GPTQ-style error feedback) at calibration_planes planes (0 = 4). "
     "row_planes: one plane count per row of w (1..bits), the most planes that row uses; a "
     "call's planes cap it further, and a call reads only the planes its rows use "
     "(row_planes_from_scores derives counts from importance scores). "
     "context None = the process-wide default CPU context. No copy of w is made; the GIL is "
     "released while quantizing."},
    {"bytes_read", FN(matrix_bytes_read), METH_VARARGS | METH_KEYWORDS,
     "bytes_read(planes=None) -> int\n\n"
     "Weight bytes a product at `planes` planes (None or 0 = all) reads in the CPU layout: the "
     "bit slabs' 16-row groups that hold a row using each plane, plus 4 bytes of coefficient "
     "per row and plane used, plus one byte of group multiplier per (row, group) when the "
     "matrix has group scales."},
    {"gemm", FN(matrix_gemm), METH_VARARGS | METH_KEYWORDS,
     "gemm(x, planes=None, act_bits=None, bias=None, column_planes=None, act_scale=0.0, "
     "out=None, context=None, activation=None) -> numpy.ndarray\n\n"
     "y = W_n x (+ bias) for every row of x, then the activation: None or 'none', or 'relu' "
     "(max(y, 0), +0 for every y <= 0; applied as y is written, bp_gemm_act). x: float32, shape "
     "(cols,) or (batch, cols), rows "
     "contiguous (any row stride). Returns shape (rows,) or (batch, rows), written into `out` "
     "when given (float32, that shape, writable, rows contiguous).\n"
     "planes: weight planes n, 1..bits (None or 0 = all). act_bits: 1..16 (None or 0 = 8). "
     "Any integer type (anything with __index__). An empty batch (0, cols) gives (0, rows). "
     "bias: float32 (rows,). column_planes: one plane count per row of x (0 = `planes`). "
     "act_scale: 0 = "
     "dynamic per-vector scale, > 0 a fixed scale (saturating). The GIL is released during "
     "the kernel; no array is copied."},
    {"dequantize", FN(matrix_dequantize), METH_VARARGS | METH_KEYWORDS,
     "dequantize(planes=None, out=None) -> numpy.ndarray\n\n"
     "The effective float32 weights (rows, cols) at `planes` planes (None or 0 = all)."},
    {"prefix_error", (PyCFunction)matrix_prefix_error, METH_O,
     "prefix_error(n) -> float\n\n"
     "Recorded relative weight error ||W - W_n||_F / ||W||_F with n planes (1..bits)."},
    {"save", (PyCFunction)matrix_save, METH_O,
     "save(path)\n\nWrite the matrix to a versioned, checksummed file (replaced if present)."},
    {"load", FN(matrix_load), METH_CLASS | METH_VARARGS | METH_KEYWORDS,
     "Matrix.load(path, context=None) -> Matrix\n\nRead a file written by save()."},
    {"to_bytes", (PyCFunction)matrix_to_bytes, METH_NOARGS,
     "to_bytes() -> bytes\n\nThe matrix in the file format, in memory."},
    {"from_bytes", FN(matrix_from_bytes), METH_CLASS | METH_VARARGS | METH_KEYWORDS,
     "Matrix.from_bytes(data, context=None) -> Matrix\n\nParse bytes written by to_bytes()."},
    {"__reduce__", (PyCFunction)matrix_reduce, METH_NOARGS, "Pickle through to_bytes()."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject PyBpMatrix_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bitplane.Matrix",
    .tp_basicsize = sizeof(PyBpMatrix),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A quantized weight matrix: k one-bit planes, most significant first, plus "
              "coefficient tables and the recorded error of every prefix.\n\n"
              "Make one with Matrix.quantize() or Matrix.load(). Immutable; any number of "
              "threads may call gemm on one matrix at once, with different plane counts.",
    .tp_dealloc = (destructor)matrix_dealloc,
    .tp_repr = (reprfunc)matrix_repr,
    .tp_getset = matrix_getset,
    .tp_methods = matrix_methods,
};
