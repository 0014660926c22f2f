/* bitplane.RNN: an LSTM or GRU stack in C (bitplane_rnn.h). */
#include "pybp.h"

#include <bitplane_rnn.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

typedef struct {
    PyObject_HEAD bp_rnn *rnn;
    PyBpContext *context; /* quantized on and run on; a strong reference */
} PyBpRNN;

static PyObject *wrap(PyTypeObject *type, bp_rnn *rnn, PyBpContext *context) {
    PyBpRNN *self = (PyBpRNN *)type->tp_alloc(type, 0);
    if (!self) {
        bp_rnn_destroy(rnn);
        return NULL;
    }
    self->rnn = rnn;
    Py_INCREF(context);
    self->context = context;
    return (PyObject *)self;
}

static const char *cell_name(bp_rnn_cell cell) {
    return cell == BP_RNN_LSTM ? "lstm" : "gru";
}

static int parse_cell(const char *name, bp_rnn_cell *cell) {
    if (!strcmp(name, "lstm"))
        *cell = BP_RNN_LSTM;
    else if (!strcmp(name, "gru"))
        *cell = BP_RNN_GRU;
    else {
        PyErr_Format(PyExc_ValueError, "cell must be 'lstm' or 'gru', got '%s'", name);
        return -1;
    }
    return 0;
}

/* A C-contiguous float32 2-D array: n0 rows of exactly n1 floats. */
static int get_dense(PyObject *obj, const char *name, int mode, size_t n0, size_t n1,
                     const char *shape_name, pybp_array *a) {
    if (pybp_array_get(obj, name, mode, 2, 2, a) < 0)
        return -1;
    if (a->n0 != n0 || a->n1 != n1 || (n0 > 1 && a->ld != n1)) {
        char shape[64];
        PyErr_Format(PyExc_ValueError,
                     "%s must be a C-contiguous float32 array of shape (%zu, %zu) "
                     "(%s), got shape %s%s",
                     name, n0, n1, shape_name, pybp_shape_str(a, shape, sizeof shape),
                     a->n0 == n0 && a->n1 == n1 ? " with padded rows" : "");
        pybp_array_release(a);
        return -1;
    }
    return 0;
}

/* row_planes: one entry per layer, None or (ih, hh) with each None or
 * gates*hidden counts; copied into out[l] (PyMem_Malloc'd, the caller
 * frees them also on failure). */
static int row_planes_get(PyObject *obj, Py_ssize_t layers, size_t rows, bp_rnn_row_planes *out) {
    PyObject *seq = PySequence_Fast(obj, "row_planes must be None or one (ih, hh) pair of "
                                         "per-row plane counts per layer");
    if (!seq)
        return -1;
    int rc = 0;
    if (PySequence_Fast_GET_SIZE(seq) != layers) {
        PyErr_Format(PyExc_ValueError, "row_planes must have one entry per layer (%zd), got %zd",
                     layers, PySequence_Fast_GET_SIZE(seq));
        rc = -1;
    }
    for (Py_ssize_t l = 0; l < layers && !rc; l++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, l);
        if (item == Py_None)
            continue;
        if ((!PyTuple_Check(item) && !PyList_Check(item)) || PySequence_Size(item) != 2) {
            PyErr_Format(PyExc_ValueError,
                         "row_planes[%zd] must be None or a pair (ih, hh) of per-row plane "
                         "counts (each None or %zu ints), got %s",
                         l, rows, Py_TYPE(item)->tp_name);
            rc = -1;
            break;
        }
        for (int k = 0; k < 2 && !rc; k++) {
            PyObject *counts = PySequence_GetItem(item, k);
            if (!counts) {
                rc = -1;
                break;
            }
            if (counts != Py_None) {
                char name[48];
                snprintf(name, sizeof name, "row_planes[%zd].%s", l, k ? "hh" : "ih");
                uint8_t *c = pybp_row_planes_get(counts, rows, name, k ? "weight_hh" : "weight_ih");
                if (!c)
                    rc = -1;
                else if (k)
                    out[l].hh = c;
                else
                    out[l].ih = c;
            }
            Py_DECREF(counts);
        }
    }
    Py_DECREF(seq);
    return rc;
}

static PyObject *rnn_quantize(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"cell",       "weights",  "bits",          "method",
                             "clip",       "context",  "split_gates",   "row_planes",
                             "group_size", "rotation", "rotation_seed", NULL};
    const char *cell_str, *method = "uniform";
    PyObject *weights_obj, *context_obj = Py_None, *row_planes_obj = Py_None;
    int split = 0;
    /* rotation not given: the RNN default (none: the integer mode needs
     * plain K, src/rnn.c). */
    int group_size = BP_DEFAULT_GROUP_SIZE, rotation = PYBP_ROTATION_DEFAULT;
    unsigned long long seed = 0;
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.bits = BP_DEFAULT_BITS;
    if (!pybp_parse_args(args, kwargs, "sO|isfOpOiiK:quantize", kwlist, &cell_str, &weights_obj,
                         &q.bits, &method, &q.clip, &context_obj, &split, &row_planes_obj,
                         &group_size, &rotation, &seed))
        return NULL;
    bp_rnn_cell cell;
    if (parse_cell(cell_str, &cell) < 0)
        return NULL;
    if (pybp_quant_options_set(&q, method, group_size, rotation, seed) < 0)
        return NULL;
    if (q.bits == 0)
        return PyErr_Format(PyExc_ValueError, "bits must be 1..%d, got 0", BP_MAX_BITS);
    PyObject *seq = PySequence_Fast(weights_obj, "weights must be a sequence of "
                                                 "(weight_ih, weight_hh, bias_ih, bias_hh)");
    if (!seq)
        return NULL;
    Py_ssize_t layers = PySequence_Fast_GET_SIZE(seq);
    if (layers < 1 || layers > BP_RNN_MAX_LAYERS) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "weights must hold 1..%d layers, got %zd",
                            BP_RNN_MAX_LAYERS, layers);
    }
    int gates = cell == BP_RNN_LSTM ? 4 : 3;
    pybp_array arrays[BP_RNN_MAX_LAYERS][4];
    memset(arrays, 0, sizeof arrays);
    bp_rnn_row_planes rp[BP_RNN_MAX_LAYERS];
    memset(rp, 0, sizeof rp);
    bp_rnn_layer_weights lw[BP_RNN_MAX_LAYERS];
    memset(lw, 0, sizeof lw);
    PyObject *result = NULL;
    PyBpContext *context = NULL;
    size_t input = 0, hidden = 0;
    static const char *names[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    for (Py_ssize_t l = 0; l < layers; l++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, l);
        if (!PyTuple_Check(item) && !PyList_Check(item)) {
            PyErr_Format(PyExc_TypeError,
                         "weights[%zd] must be a tuple (weight_ih, weight_hh, "
                         "bias_ih, bias_hh), got %s",
                         l, Py_TYPE(item)->tp_name);
            goto done;
        }
        if (PySequence_Size(item) != 4) {
            PyErr_Format(PyExc_ValueError,
                         "weights[%zd] must have 4 entries (weight_ih, "
                         "weight_hh, bias_ih, bias_hh), got %zd",
                         l, PySequence_Size(item));
            goto done;
        }
        for (int k = 0; k < 4; k++) {
            PyObject *a = PySequence_GetItem(item, k);
            if (!a)
                goto done;
            char name[48];
            snprintf(name, sizeof name, "weights[%zd].%s", l, names[k]);
            int rc = 0;
            if (a != Py_None || k < 2)
                rc =
                    pybp_array_get(a, name, PYBP_READ, k < 2 ? 2 : 1, k < 2 ? 2 : 1, &arrays[l][k]);
            Py_DECREF(a);
            if (rc < 0)
                goto done;
        }
        pybp_array *w = arrays[l];
        if (l == 0) {
            hidden = w[1].n1;
            input = w[0].n1;
        }
        size_t want_in = l == 0 ? input : hidden;
        char shape[64];
        if (w[1].n0 != (size_t)gates * hidden || w[1].n1 != hidden || w[1].ld != hidden) {
            PyErr_Format(PyExc_ValueError,
                         "weights[%zd].weight_hh must be C-contiguous with "
                         "shape (%d*hidden, hidden) = (%zu, %zu), got %s",
                         l, gates, (size_t)gates * hidden, hidden,
                         pybp_shape_str(&w[1], shape, sizeof shape));
            goto done;
        }
        if (w[0].n0 != (size_t)gates * hidden || w[0].n1 != want_in || w[0].ld != want_in) {
            PyErr_Format(PyExc_ValueError,
                         "weights[%zd].weight_ih must be C-contiguous with "
                         "shape (%zu, %zu), got %s",
                         l, (size_t)gates * hidden, want_in,
                         pybp_shape_str(&w[0], shape, sizeof shape));
            goto done;
        }
        for (int k = 2; k < 4; k++)
            if (w[k].held && w[k].n1 != (size_t)gates * hidden) {
                PyErr_Format(PyExc_ValueError, "weights[%zd].%s must have shape (%zu,), got %s", l,
                             names[k], (size_t)gates * hidden,
                             pybp_shape_str(&w[k], shape, sizeof shape));
                goto done;
            }
        lw[l] = (bp_rnn_layer_weights){w[0].data, w[1].data, w[2].held ? w[2].data : NULL,
                                       w[3].held ? w[3].data : NULL};
    }
    if (row_planes_obj != Py_None &&
        row_planes_get(row_planes_obj, layers, (size_t)gates * hidden, rp) < 0)
        goto done;
    if (!(context = pybp_resolve_context(context_obj)))
        goto done;
    bp_rnn_options ro = BP_RNN_OPTIONS_INIT;
    ro.split_gates = split;
    ro.row_planes = row_planes_obj != Py_None ? rp : NULL;
    bp_rnn *rnn = NULL;
    bp_status st;
    PYBP_NOGIL(st,
               bp_rnn_create(context->ctx, cell, (size_t)layers, input, hidden, lw, &q, &ro, &rnn));
    result = st == BP_OK ? wrap(type, rnn, context) : pybp_raise(st);
done:
    for (Py_ssize_t l = 0; l < layers; l++) {
        for (int k = 0; k < 4; k++)
            pybp_array_release(&arrays[l][k]);
        PyMem_Free((void *)rp[l].ih);
        PyMem_Free((void *)rp[l].hh);
    }
    Py_XDECREF(context);
    Py_DECREF(seq);
    return result;
}

/* planes: None -> 0 (all); an int 1..bits; or a sequence of one int per gate
 * (only with split gates), which goes into every layer's precision entry. */
static int parse_planes(PyBpRNN *self, PyObject *obj, const char *name, int *scalar, int *per_gate,
                        int *has_gates) {
    int gates = bp_rnn_gates(self->rnn);
    *scalar = 0;
    if (obj == Py_None)
        return 0;
    if (PyBool_Check(obj)) { /* an int to Python, not a plane count */
        PyErr_Format(PyExc_TypeError, "%s must be None, an int or a sequence of ints, got bool",
                     name);
        return -1;
    }
    /* An int or NumPy integer scalar (an array, a sequence, is per gate). */
    if (PyLong_Check(obj) || (PyIndex_Check(obj) && !PySequence_Check(obj))) {
        long v = PyLong_AsLong(obj);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (v == 0 || v < INT_MIN || v > INT_MAX) {
            PyErr_Format(PyExc_ValueError,
                         "%s must be None (all), an int 1..bits or one int per "
                         "gate, got %ld",
                         name, v);
            return -1;
        }
        *scalar = (int)v;
        return 0;
    }
    PyObject *seq = PySequence_Fast(obj, "planes must be None, an int or a sequence of ints");
    if (!seq)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != gates) {
        PyErr_Format(PyExc_ValueError, "%s must have one entry per gate (%d), got %zd", name, gates,
                     PySequence_Fast_GET_SIZE(seq));
        Py_DECREF(seq);
        return -1;
    }
    for (int g = 0; g < gates; g++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, g);
        PyObject *index = PyBool_Check(item) ? NULL : PyNumber_Index(item);
        long v = index ? PyLong_AsLong(index) : -1;
        Py_XDECREF(index);
        if (!index || (v == -1 && PyErr_Occurred()) || v < 1 || v > INT_MAX) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s[%d] must be an int >= 1", name, g);
            }
            Py_DECREF(seq);
            return -1;
        }
        per_gate[g] = (int)v;
    }
    Py_DECREF(seq);
    *has_gates = 1;
    return 0;
}

typedef struct run_args {
    bp_rnn_run_options run;
    bp_rnn_precision prec[BP_RNN_MAX_LAYERS];
} run_args;

static int parse_run(PyBpRNN *self, PyObject *planes_ih, PyObject *planes_hh, PyObject *act_bits,
                     int integer, run_args *r) {
    memset(r, 0, sizeof *r);
    r->run = BP_RNN_RUN_OPTIONS_INIT;
    int gi[BP_RNN_MAX_GATES] = {0}, gh[BP_RNN_MAX_GATES] = {0}, has = 0;
    if (parse_planes(self, planes_ih, "planes_ih", &r->run.planes_ih, gi, &has) < 0 ||
        parse_planes(self, planes_hh, "planes_hh", &r->run.planes_hh, gh, &has) < 0)
        return -1;
    if (act_bits != Py_None) {
        if (PyBool_Check(act_bits) || !PyIndex_Check(act_bits)) {
            PyErr_Format(PyExc_TypeError, "act_bits must be None or an int, got %s",
                         Py_TYPE(act_bits)->tp_name);
            return -1;
        }
        long v = PyLong_AsLong(act_bits);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (v < 1 || v > 16) {
            PyErr_Format(PyExc_ValueError, "act_bits must be None (8) or 1..16, got %ld", v);
            return -1;
        }
        r->run.act_bits = (int)v;
    }
    r->run.mode = integer ? BP_RNN_INTEGER : BP_RNN_FLOAT;
    if (has) {
        for (size_t l = 0; l < bp_rnn_layers(self->rnn); l++) {
            memcpy(r->prec[l].planes_ih, gi, sizeof gi);
            memcpy(r->prec[l].planes_hh, gh, sizeof gh);
        }
        r->run.layers = r->prec;
    }
    return 0;
}

static PyObject *rnn_forward(PyBpRNN *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x",         "steps",    "h0",      "c0", "planes_ih",
                             "planes_hh", "act_bits", "integer", NULL};
    PyObject *x_obj, *h0_obj = Py_None, *c0_obj = Py_None, *pi = Py_None, *ph = Py_None,
                     *ab = Py_None;
    Py_ssize_t steps;
    int integer = 0;
    if (!pybp_parse_args(args, kwargs, "On|OOOOOp:forward", kwlist, &x_obj, &steps, &h0_obj,
                         &c0_obj, &pi, &ph, &ab, &integer))
        return NULL;
    run_args r;
    if (parse_run(self, pi, ph, ab, integer, &r) < 0)
        return NULL;
    size_t E = bp_rnn_input_size(self->rnn), H = bp_rnn_hidden_size(self->rnn);
    size_t L = bp_rnn_layers(self->rnn);
    bool lstm = bp_rnn_cell_kind(self->rnn) == BP_RNN_LSTM;
    pybp_array x = {0}, h0 = {0}, c0 = {0}, y = {0}, hn = {0}, cn = {0};
    PyObject *y_obj = NULL, *hn_obj = NULL, *cn_obj = NULL, *result = NULL;
    if (pybp_array_get(x_obj, "x", PYBP_READ, 2, 2, &x) < 0)
        goto done;
    if (steps < 1 || x.n0 % (size_t)steps != 0 || x.n1 != E || (x.n0 > 1 && x.ld != E)) {
        PyErr_Format(PyExc_ValueError,
                     "x must be C-contiguous float32 of shape (steps*batch, "
                     "%zu) with steps = %zd dividing its rows",
                     E, steps);
        goto done;
    }
    size_t B = x.n0 / (size_t)steps;
    if (h0_obj != Py_None &&
        get_dense(h0_obj, "h0", PYBP_READ, L * B, H, "layers*batch, hidden", &h0) < 0)
        goto done;
    if (c0_obj != Py_None) {
        if (!lstm) {
            PyErr_SetString(PyExc_ValueError, "c0 must be None for a GRU (it has no cell state)");
            goto done;
        }
        if (get_dense(c0_obj, "c0", PYBP_READ, L * B, H, "layers*batch, hidden", &c0) < 0)
            goto done;
    }
    if (!(y_obj = pybp_empty_f32((Py_ssize_t)(x.n0), (Py_ssize_t)H)) ||
        !(hn_obj = pybp_empty_f32((Py_ssize_t)(L * B), (Py_ssize_t)H)) ||
        (lstm && !(cn_obj = pybp_empty_f32((Py_ssize_t)(L * B), (Py_ssize_t)H))))
        goto done;
    if (pybp_array_get(y_obj, "y", PYBP_WRITE, 2, 2, &y) < 0 ||
        pybp_array_get(hn_obj, "h_n", PYBP_WRITE, 2, 2, &hn) < 0 ||
        (lstm && pybp_array_get(cn_obj, "c_n", PYBP_WRITE, 2, 2, &cn) < 0))
        goto done;
    bp_status st;
    PYBP_NOGIL(st, bp_rnn_forward(self->context->ctx, self->rnn, x.data, (size_t)steps, B,
                                  h0.held ? h0.data : NULL, c0.held ? c0.data : NULL, y.data,
                                  hn.data, lstm ? cn.data : NULL, &r.run));
    if (st != BP_OK) {
        pybp_raise(st);
        goto done;
    }
    result = Py_BuildValue("(OOO)", y_obj, hn_obj, lstm ? cn_obj : Py_None);
done:
    pybp_array_release(&x);
    pybp_array_release(&h0);
    pybp_array_release(&c0);
    pybp_array_release(&y);
    pybp_array_release(&hn);
    pybp_array_release(&cn);
    Py_XDECREF(y_obj);
    Py_XDECREF(hn_obj);
    Py_XDECREF(cn_obj);
    return result;
}

static PyObject *rnn_step(PyBpRNN *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {
        "x", "h", "c", "planes_ih", "planes_hh", "act_bits", "integer", "column_planes", NULL};
    PyObject *x_obj, *h_obj, *c_obj = Py_None, *pi = Py_None, *ph = Py_None, *ab = Py_None,
                             *cp_obj = Py_None;
    int integer = 0;
    if (!pybp_parse_args(args, kwargs, "OO|OOOOpO:step", kwlist, &x_obj, &h_obj, &c_obj, &pi, &ph,
                         &ab, &integer, &cp_obj))
        return NULL;
    run_args r;
    if (parse_run(self, pi, ph, ab, integer, &r) < 0)
        return NULL;
    size_t E = bp_rnn_input_size(self->rnn), H = bp_rnn_hidden_size(self->rnn);
    size_t L = bp_rnn_layers(self->rnn);
    bool lstm = bp_rnn_cell_kind(self->rnn) == BP_RNN_LSTM;
    pybp_array x = {0}, h = {0}, c = {0};
    PyObject *result = NULL;
    int *column_planes = NULL;
    if (pybp_array_get(x_obj, "x", PYBP_READ, 2, 2, &x) < 0)
        goto done;
    if (x.n1 != E || (x.n0 > 1 && x.ld != E)) {
        PyErr_Format(PyExc_ValueError, "x must be C-contiguous float32 of shape (batch, %zu)", E);
        goto done;
    }
    size_t B = x.n0;
    if (cp_obj != Py_None && !(column_planes = pybp_column_planes_get(cp_obj, B)))
        goto done;
    if (get_dense(h_obj, "h", PYBP_WRITE, L * B, H, "layers*batch, hidden", &h) < 0)
        goto done;
    if (lstm && c_obj == Py_None) {
        PyErr_SetString(PyExc_ValueError, "c (the cell state) is required for an LSTM");
        goto done;
    }
    if (!lstm && c_obj != Py_None) {
        PyErr_SetString(PyExc_ValueError, "c must be None for a GRU (it has no cell state)");
        goto done;
    }
    if (lstm && get_dense(c_obj, "c", PYBP_WRITE, L * B, H, "layers*batch, hidden", &c) < 0)
        goto done;
    bp_status st;
    /* Per-column counts go through their own entry, so that a plain step
     * stays the call it always was. */
    if (column_planes)
        PYBP_NOGIL(st, bp_rnn_step_columns(self->context->ctx, self->rnn, x.data, B, h.data,
                                           lstm ? c.data : NULL, column_planes, &r.run));
    else
        PYBP_NOGIL(st, bp_rnn_step(self->context->ctx, self->rnn, x.data, B, h.data,
                                   lstm ? c.data : NULL, &r.run));
    if (st != BP_OK)
        pybp_raise(st);
    else {
        Py_INCREF(Py_None);
        result = Py_None;
    }
done:
    PyMem_Free(column_planes);
    pybp_array_release(&x);
    pybp_array_release(&h);
    pybp_array_release(&c);
    return result;
}

static const bp_matrix *matrix_at(PyBpRNN *self, Py_ssize_t layer, const char *op, int gate);

static const bp_matrix *matrix_arg(PyBpRNN *self, PyObject *args, PyObject *kwargs, const char *fmt,
                                   char **kwlist, int *n) {
    Py_ssize_t layer;
    const char *op;
    int gate = -1;
    if (!pybp_parse_args(args, kwargs, fmt, kwlist, &layer, &op, n, &gate))
        return NULL;
    return matrix_at(self, layer, op, gate);
}

/* The matrix of layer, op ("ih" or "hh") and gate (-1 when fused). */
static const bp_matrix *matrix_at(PyBpRNN *self, Py_ssize_t layer, const char *op, int gate) {
    bp_rnn_operator o;
    if (!strcmp(op, "ih"))
        o = BP_RNN_INPUT;
    else if (!strcmp(op, "hh"))
        o = BP_RNN_RECURRENT;
    else {
        PyErr_Format(PyExc_ValueError, "op must be 'ih' or 'hh', got '%s'", op);
        return NULL;
    }
    if (layer < 0) {
        PyErr_Format(PyExc_ValueError, "layer must be >= 0, got %zd", layer);
        return NULL;
    }
    const bp_matrix *m = bp_rnn_matrix(self->rnn, (size_t)layer, o, gate);
    if (!m)
        pybp_raise(BP_ERR_OUT_OF_RANGE);
    return m;
}

static PyObject *rnn_prefix_error(PyBpRNN *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"layer", "op", "n", "gate", NULL};
    int n = 0;
    const bp_matrix *m = matrix_arg(self, args, kwargs, "nsi|i:prefix_error", kwlist, &n);
    if (!m)
        return NULL;
    double e = bp_matrix_prefix_error(m, n);
    return e < 0 ? pybp_raise(BP_ERR_OUT_OF_RANGE) : PyFloat_FromDouble(e);
}

static PyObject *rnn_dequantize(PyBpRNN *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"layer", "op", "planes", "gate", NULL};
    int planes = 0;
    const bp_matrix *m = matrix_arg(self, args, kwargs, "nsi|i:dequantize", kwlist, &planes);
    if (!m)
        return NULL;
    size_t rows = bp_matrix_rows(m), cols = bp_matrix_cols(m);
    PyObject *out = pybp_empty_f32((Py_ssize_t)rows, (Py_ssize_t)cols);
    pybp_array a;
    if (!out || pybp_array_get(out, "out", PYBP_WRITE, 2, 2, &a) < 0) {
        Py_XDECREF(out);
        return NULL;
    }
    bp_status st = bp_matrix_dequantize(NULL, m, planes, a.data, a.ld);
    pybp_array_release(&a);
    if (st != BP_OK) {
        Py_DECREF(out);
        return pybp_raise(st);
    }
    return out;
}

static PyObject *rnn_row_planes(PyBpRNN *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"layer", "op", "gate", NULL};
    Py_ssize_t layer;
    const char *op;
    int gate = -1;
    if (!pybp_parse_args(args, kwargs, "ns|i:row_planes", kwlist, &layer, &op, &gate))
        return NULL;
    const bp_matrix *m = matrix_at(self, layer, op, gate);
    return m ? pybp_matrix_row_planes(m) : NULL;
}

static PyObject *rnn_bytes_read(PyBpRNN *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"layer", "op", "planes", "gate", NULL};
    int planes = 0;
    const bp_matrix *m = matrix_arg(self, args, kwargs, "ns|ii:bytes_read", kwlist, &planes);
    if (!m)
        return NULL;
    size_t bytes = bp_matrix_bytes_read(m, planes);
    return bytes ? PyLong_FromSize_t(bytes) : pybp_raise(BP_ERR_OUT_OF_RANGE);
}

PYBP_PERSIST_TABLE(persist, bp_rnn, wrap)

static PyObject *rnn_save(PyBpRNN *self, PyObject *arg) {
    return pybp_persist_save(&persist, self->rnn, arg);
}

static PyObject *rnn_load(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    return pybp_persist_load(&persist, type, args, kwargs);
}

static PyObject *rnn_to_bytes(PyBpRNN *self, PyObject *unused) {
    (void)unused;
    return pybp_persist_to_bytes(&persist, self->rnn);
}

static PyObject *rnn_from_bytes(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    return pybp_persist_from_bytes(&persist, type, args, kwargs);
}

static void rnn_dealloc(PyBpRNN *self) {
    bp_rnn_destroy(self->rnn);
    Py_XDECREF(self->context);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *rnn_repr(PyBpRNN *self) {
    return PyUnicode_FromFormat("<bitplane.RNN %s, %zu layer(s), input %zu, hidden %zu, %s gates>",
                                cell_name(bp_rnn_cell_kind(self->rnn)), bp_rnn_layers(self->rnn),
                                bp_rnn_input_size(self->rnn), bp_rnn_hidden_size(self->rnn),
                                bp_rnn_split_gates(self->rnn) ? "split" : "fused");
}

#define GETTER(name, expr)                                                                         \
    static PyObject *get_##name(PyBpRNN *self, void *c) {                                          \
        (void)c;                                                                                   \
        return expr;                                                                               \
    }
GETTER(cell, PyUnicode_FromString(cell_name(bp_rnn_cell_kind(self->rnn))))
GETTER(layers, PyLong_FromSize_t(bp_rnn_layers(self->rnn)))
GETTER(input_size, PyLong_FromSize_t(bp_rnn_input_size(self->rnn)))
GETTER(hidden_size, PyLong_FromSize_t(bp_rnn_hidden_size(self->rnn)))
GETTER(gates, PyLong_FromLong(bp_rnn_gates(self->rnn)))
GETTER(split_gates, PyBool_FromLong(bp_rnn_split_gates(self->rnn)))
GETTER(bits, PyLong_FromLong(bp_matrix_bits(bp_rnn_matrix(self->rnn, 0, BP_RNN_INPUT,
                                                          bp_rnn_split_gates(self->rnn) ? 0 : -1))))

static PyGetSetDef rnn_getset[] = {
    {"cell", (getter)get_cell, NULL, "'lstm' or 'gru'.", NULL},
    {"layers", (getter)get_layers, NULL, "Number of stacked layers.", NULL},
    {"input_size", (getter)get_input_size, NULL, "Input length of layer 0.", NULL},
    {"hidden_size", (getter)get_hidden_size, NULL, "Hidden state length.", NULL},
    {"gates", (getter)get_gates, NULL, "4 (LSTM) or 3 (GRU).", NULL},
    {"split_gates", (getter)get_split_gates, NULL,
     "Whether each gate has its own matrix (per-gate plane counts).", NULL},
    {"bits", (getter)get_bits, NULL, "Planes k stored per matrix.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define FN(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef rnn_methods[] = {
    {"quantize", FN(rnn_quantize), METH_CLASS | METH_VARARGS | METH_KEYWORDS,
     "RNN.quantize(cell, weights, bits=8, method='uniform', clip=0.0, context=None, "
     "split_gates=False, row_planes=None) -> RNN\n\n"
     "cell: 'lstm' or 'gru'. weights: one (weight_ih, weight_hh, bias_ih, bias_hh) per layer, "
     "float32 C-contiguous arrays in PyTorch's layout (biases may be None). row_planes: None, "
     "or one entry per layer, None or a pair (ih, hh) of per-row plane counts (each None or "
     "gates*hidden ints 1..bits in the weights' row order; docs/row-planes.md)."},
    {"forward", FN(rnn_forward), METH_VARARGS | METH_KEYWORDS,
     "forward(x, steps, h0=None, c0=None, planes_ih=None, planes_hh=None, act_bits=None, "
     "integer=False) -> (y, h_n, c_n)\n\n"
     "x: (steps*batch, input_size), time-major. h0, c0: (layers*batch, hidden) or None. "
     "Returns y (steps*batch, hidden), h_n and c_n (layers*batch, hidden; c_n None for a GRU). "
     "planes_*: None (all), an int, or one int per gate (split gates only). One C call; the GIL "
     "is released."},
    {"step", FN(rnn_step), METH_VARARGS | METH_KEYWORDS,
     "step(x, h, c=None, planes_ih=None, planes_hh=None, act_bits=None, integer=False, "
     "column_planes=None)\n\n"
     "One time step: x (batch, input_size); h and c (layers*batch, hidden) are updated in "
     "place. The output is the last layer's rows of h. column_planes: one plane count per row "
     "of x (0 = the counts above), capping every matrix for that row (bp_rnn_step_columns): "
     "streams at different precisions in one step, each row equal to its own step."},
    {"prefix_error", FN(rnn_prefix_error), METH_VARARGS | METH_KEYWORDS,
     "prefix_error(layer, op, n, gate=-1) -> float\n\nop 'ih' or 'hh'; gate -1 when fused."},
    {"dequantize", FN(rnn_dequantize), METH_VARARGS | METH_KEYWORDS,
     "dequantize(layer, op, planes, gate=-1) -> numpy.ndarray\n\nplanes 0 = all."},
    {"row_planes", FN(rnn_row_planes), METH_VARARGS | METH_KEYWORDS,
     "row_planes(layer, op, gate=-1) -> numpy.ndarray (uint8)\n\n"
     "The per-row plane counts of one matrix in its rows' order (bits for every row when it "
     "has none)."},
    {"bytes_read", FN(rnn_bytes_read), METH_VARARGS | METH_KEYWORDS,
     "bytes_read(layer, op, planes=0, gate=-1) -> int\n\n"
     "Weight bytes one product of that matrix reads at `planes` (0 = all): the slabs its rows "
     "use, coefficients and group multipliers (bp_matrix_bytes_read)."},
    {"save", (PyCFunction)rnn_save, METH_O, "save(path)"},
    {"load", FN(rnn_load), METH_CLASS | METH_VARARGS | METH_KEYWORDS,
     "RNN.load(path, context=None) -> RNN"},
    {"to_bytes", (PyCFunction)rnn_to_bytes, METH_NOARGS, "to_bytes() -> bytes"},
    {"from_bytes", FN(rnn_from_bytes), METH_CLASS | METH_VARARGS | METH_KEYWORDS,
     "RNN.from_bytes(data, context=None) -> RNN"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject PyBpRNN_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bitplane.RNN",
    .tp_basicsize = sizeof(PyBpRNN),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An LSTM or GRU stack whose products are bit-serial, run in C one sequence per "
              "call (bitplane_rnn.h). Make one with RNN.quantize() or RNN.load(). Immutable; "
              "threads may share it.",
    .tp_dealloc = (destructor)rnn_dealloc,
    .tp_repr = (reprfunc)rnn_repr,
    .tp_getset = rnn_getset,
    .tp_methods = rnn_methods,
};
