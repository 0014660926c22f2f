/*
 * Shared declarations of the CPython extension bitplane._bitplane.
 *
 * Only CPython API available since 3.9 is used. Arrays come in through the
 * buffer protocol and are never copied; every kernel call runs with the GIL
 * released while the buffer views stay held.
 */
#ifndef PYBP_H
#define PYBP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>

#include <bitplane.h>

/* act_bits range of bp_run_options (bitplane.h: "1..16; 0 = 8"). */
#define PYBP_MAX_ACT_BITS 16

typedef struct {
    PyObject_HEAD bp_context *ctx;
} PyBpContext;

typedef struct {
    PyObject_HEAD bp_matrix *m;
    PyBpContext *context; /* the context it was made on; a strong reference */
} PyBpMatrix;

extern PyTypeObject PyBpContext_Type;
extern PyTypeObject PyBpMatrix_Type;
extern PyTypeObject PyBpRNN_Type; /* rnn.c */

/* st = call, with the GIL released around the call (every kernel, quantize,
 * file and context call goes through this). The caller keeps the buffers
 * and objects the call uses alive. */
#define PYBP_NOGIL(st, call)                                                                       \
    do {                                                                                           \
        PyThreadState *pybp_ts_ = PyEval_SaveThread();                                             \
        (st) = (call);                                                                             \
        PyEval_RestoreThread(pybp_ts_);                                                            \
    } while (0)

/* ---- errors.c: library statuses become exceptions --------------------- */

/* Create bitplane.Error and one subclass per status; add them to module. */
int pybp_errors_init(PyObject *module);
/* Raise the exception for st with bp_last_error() as message; returns NULL. */
PyObject *pybp_raise(bp_status st);
/* Raise the exception class of st with a message of the binding's own (for
 * checks made before the library is called, e.g. shapes); returns NULL. */
PyObject *pybp_raise_format(bp_status st, const char *fmt, ...);
/* The exception class of st (bitplane.Error for an unknown status); borrowed. */
PyObject *pybp_error_type(bp_status st);

/* ---- args.c: argument parsing ------------------------------------------- */

/* PyArg_ParseTupleAndKeywords with bool refused for integer units, "K"
 * range-checked to [0, 2**64) instead of masked, and "p" limited to bools
 * (and the ints 0 and 1); the errors name the function (the format's part
 * after ':') and the argument. Same return value. */
int pybp_parse_args(PyObject *args, PyObject *kwargs, const char *format, char **kwlist, ...);

/* ---- context.c ---------------------------------------------------------- */

/* context None -> the process-wide default CPU context; a Context -> itself.
 * Returns a new reference, or NULL with an exception set. */
PyBpContext *pybp_resolve_context(PyObject *context);
/* Name of a backend ("cpu", "cuda", "opencl", "auto"). */
const char *pybp_backend_name(bp_backend backend);

/* matrix.c: bitplane._row_planes_from_scores. */
PyObject *pybp_row_planes_from_scores(PyObject *self, PyObject *args, PyObject *kwargs);
/* matrix.c: a column_planes argument, any sequence of batch ints, copied
 * (it is tiny) into PyMem memory the caller frees; NULL with an exception
 * set (wrong length, a non-int). Range checks are the library's. */
int *pybp_column_planes_get(PyObject *obj, size_t batch);
/* The quantize options that Matrix.quantize and RNN.quantize share, as
 * Python spells them: method "uniform" | "residual"; group_size 0 (per row)
 * or a power of two; rotation 0 (none), a power-of-four block, or
 * PYBP_ROTATION_DEFAULT (not given: the library's default). Fills opt's
 * method, group_size, rotation and rotation_seed; returns 0, or -1 with
 * ValueError set. Range checks beyond the sign are the library's. */
#define PYBP_ROTATION_DEFAULT INT_MIN
int pybp_quant_options_set(bp_quant_options *opt, const char *method, int group_size, int rotation,
                           unsigned long long rotation_seed);
/* Per-row plane counts from Python: a sequence of `rows` ints (numpy arrays
 * included) copied into PyMem_Malloc'd bytes (the caller frees them), or
 * NULL with an exception that says "<name> must have one entry per row of
 * <of>" or names the bad entry. The library checks 1..bits; values past a
 * byte are refused here with the same message. */
uint8_t *pybp_row_planes_get(PyObject *obj, size_t rows, const char *name, const char *of);
/* A new numpy uint8 array holding n bytes of data. */
PyObject *pybp_u8_array(const uint8_t *data, size_t n);
/* A matrix's per-row plane counts (bits for every row without counts). */
PyObject *pybp_matrix_row_planes(const bp_matrix *m);

/* ---- arrays.c: float32 buffers without copies --------------------------- */

/* A float32 view of a 1-D or 2-D buffer whose last dimension is contiguous:
 * n0 rows of n1 floats, row i at data + i*ld. A 1-D buffer is one row. */
typedef struct {
    Py_buffer view;
    int held;
    int ndim;
    size_t n0, n1, ld;
    float *data;
} pybp_array;

enum { PYBP_READ = 0, PYBP_WRITE = 1 };

/* Get obj's buffer as float32 with ndim in [min_ndim, max_ndim]. name is the
 * argument's name for messages. Raises TypeError (not a buffer, wrong dtype)
 * or ValueError (wrong ndim, strides, alignment, read-only). Returns 0 or -1. */
int pybp_array_get(PyObject *obj, const char *name, int mode, int min_ndim, int max_ndim,
                   pybp_array *a);
void pybp_array_release(pybp_array *a);
/* A new C-contiguous float32 numpy array of shape (d0,) when d1 < 0, else
 * (d0, d1). Uses numpy.empty, imported on first use. */
PyObject *pybp_empty_f32(Py_ssize_t d0, Py_ssize_t d1);
/* "(3, 64)" for messages; static per-thread storage is not needed: writes buf. */
const char *pybp_shape_str(const pybp_array *a, char *buf, size_t size);

/* ---- persist.c: files and bytes ------------------------------------------ */

/* One object type's save/load entry points, adapted to void pointers; wrap
 * takes ownership of obj (destroying it on failure). */
typedef struct {
    bp_status (*save)(const void *obj, const char *path);
    bp_status (*load)(bp_context *ctx, const char *path, void **out);
    bp_status (*serialize)(const void *obj, void *buf, size_t cap, size_t *needed);
    bp_status (*deserialize)(bp_context *ctx, const void *buf, size_t len, void **out);
    PyObject *(*wrap)(PyTypeObject *type, void *obj, PyBpContext *context);
} pybp_persist;

/* Define `static const pybp_persist name` for library type T (bp_matrix,
 * bp_rnn: T_save, T_load, T_serialize, T_deserialize) and the file's
 * wrap(PyTypeObject *, T *, PyBpContext *). */
#define PYBP_PERSIST_TABLE(name, T, wrap_fn)                                                       \
    static bp_status name##_save(const void *obj, const char *path) {                              \
        return T##_save(obj, path);                                                                \
    }                                                                                              \
    static bp_status name##_load(bp_context *ctx, const char *path, void **out) {                  \
        T *obj = NULL;                                                                             \
        bp_status st = T##_load(ctx, path, &obj);                                                  \
        *out = obj;                                                                                \
        return st;                                                                                 \
    }                                                                                              \
    static bp_status name##_serialize(const void *obj, void *buf, size_t cap, size_t *needed) {    \
        return T##_serialize(obj, buf, cap, needed);                                               \
    }                                                                                              \
    static bp_status name##_deserialize(bp_context *ctx, const void *buf, size_t len,              \
                                        void **out) {                                              \
        T *obj = NULL;                                                                             \
        bp_status st = T##_deserialize(ctx, buf, len, &obj);                                       \
        *out = obj;                                                                                \
        return st;                                                                                 \
    }                                                                                              \
    static PyObject *name##_wrap(PyTypeObject *type, void *obj, PyBpContext *context) {            \
        return wrap_fn(type, obj, context);                                                        \
    }                                                                                              \
    static const pybp_persist name = {name##_save, name##_load, name##_serialize,                  \
                                      name##_deserialize, name##_wrap};

/* obj.save(path) */
PyObject *pybp_persist_save(const pybp_persist *ops, const void *obj, PyObject *path_arg);
/* Type.load(path, context=None) */
PyObject *pybp_persist_load(const pybp_persist *ops, PyTypeObject *type, PyObject *args,
                            PyObject *kwargs);
/* obj.to_bytes() */
PyObject *pybp_persist_to_bytes(const pybp_persist *ops, const void *obj);
/* Type.from_bytes(data, context=None) */
PyObject *pybp_persist_from_bytes(const pybp_persist *ops, PyTypeObject *type, PyObject *args,
                                  PyObject *kwargs);

#endif /* PYBP_H */
