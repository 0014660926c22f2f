"""Direct calls into the bundled shared C library through ctypes, to check the
extension module against the C API itself (same arguments, bit-equal results)."""

import ctypes

import numpy as np

import bitplane


class QuantOptions(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("bits", ctypes.c_int), ("method", ctypes.c_int),
                ("clip", ctypes.c_float)]


class RunOptions(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("planes", ctypes.c_int), ("act_bits", ctypes.c_int),
                ("bias", ctypes.c_void_p), ("column_planes", ctypes.c_void_p),
                ("act_scale", ctypes.c_float)]


class ContextOptions(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("backend", ctypes.c_int), ("threads", ctypes.c_int),
                ("cpu_kernel", ctypes.c_int), ("device", ctypes.c_int), ("platform", ctypes.c_int),
                ("gpu_kernel", ctypes.c_int)]


_METHODS = {"uniform": 0, "residual": 1}


class CLib:
    """The C library: a context, quantize, gemm and serialize."""

    def __init__(self, threads=1):
        self.lib = lib = ctypes.CDLL(bitplane.library_path())
        lib.bp_last_error.restype = ctypes.c_char_p
        lib.bp_matrix_quantize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                           ctypes.c_size_t, ctypes.c_size_t,
                                           ctypes.POINTER(QuantOptions),
                                           ctypes.POINTER(ctypes.c_void_p)]
        lib.bp_gemm.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p,
                                ctypes.c_size_t, ctypes.POINTER(RunOptions)]
        lib.bp_matrix_serialize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                            ctypes.POINTER(ctypes.c_size_t)]
        lib.bp_matrix_destroy.argtypes = [ctypes.c_void_p]
        lib.bp_context_destroy.argtypes = [ctypes.c_void_p]
        lib.bp_context_create.argtypes = [ctypes.POINTER(ContextOptions),
                                          ctypes.POINTER(ctypes.c_void_p)]
        opt = ContextOptions(size=ctypes.sizeof(ContextOptions), threads=threads)
        self.ctx = ctypes.c_void_p()
        self._check(lib.bp_context_create(ctypes.byref(opt), ctypes.byref(self.ctx)))
        self._matrices = []

    def _check(self, status):
        if status != 0:
            raise RuntimeError(f"C status {status}: {self.lib.bp_last_error().decode()}")

    def quantize(self, w, bits=8, method="uniform", clip=0.0):
        assert w.dtype == np.float32 and w.flags.c_contiguous
        opt = QuantOptions(size=ctypes.sizeof(QuantOptions), bits=bits, method=_METHODS[method],
                           clip=clip)
        m = ctypes.c_void_p()
        self._check(self.lib.bp_matrix_quantize(self.ctx, w.ctypes.data, w.shape[0], w.shape[1],
                                                w.shape[1], ctypes.byref(opt), ctypes.byref(m)))
        self._matrices.append(m)
        return m

    def gemm(self, m, x, rows, planes=0, act_bits=0, bias=None, column_planes=None,
             act_scale=0.0):
        """x: (batch, cols) C-contiguous; returns (batch, rows)."""
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.ndim == 2
        y = np.full((x.shape[0], rows), np.nan, np.float32)
        cp = None if column_planes is None else np.ascontiguousarray(column_planes, np.intc)
        opt = RunOptions(size=ctypes.sizeof(RunOptions), planes=planes, act_bits=act_bits,
                         bias=None if bias is None else bias.ctypes.data,
                         column_planes=None if cp is None else cp.ctypes.data,
                         act_scale=act_scale)
        self._check(self.lib.bp_gemm(self.ctx, m, x.ctypes.data, x.shape[0], x.shape[1],
                                     y.ctypes.data, rows, ctypes.byref(opt)))
        return y

    def serialize(self, m):
        need = ctypes.c_size_t()
        self._check(self.lib.bp_matrix_serialize(m, None, 0, ctypes.byref(need)))
        buf = ctypes.create_string_buffer(need.value)
        self._check(self.lib.bp_matrix_serialize(m, buf, need.value, ctypes.byref(need)))
        return buf.raw

    def close(self):
        for m in self._matrices:
            self.lib.bp_matrix_destroy(m)
        self._matrices = []
        self.lib.bp_context_destroy(self.ctx)
        self.ctx = None
