"""bitplane: bit-serial ("PrecisionBatching") neural-network inference.

Weights are quantized once into k one-bit planes, most significant first;
every call picks how many planes to use (``planes``) and the activation bits
(``act_bits``), trading accuracy for speed per call without re-quantizing.
By default each row has an 8-bit scale per group of 64 columns
(``group_size``, 0.125 bits per weight) and K is rotated by a randomized
block-Hadamard transform of block 256 (``rotation``), which ``gemm`` applies
to x itself; ``group_size=0, rotation=0`` gives one scale per row.
``calibration=X`` (sample activations, shape (count, cols)) minimises the
output error on them at ``calibration_planes`` planes instead of the weight
error.

>>> import numpy as np, bitplane
>>> w = np.random.default_rng(0).standard_normal((256, 64), dtype=np.float32)
>>> m = bitplane.Matrix.quantize(w, bits=8, method="uniform")
>>> x = np.ones((4, 64), np.float32)
>>> m.gemm(x, planes=4, act_bits=8).shape
(4, 256)

Everything from the C extension (``Context``, ``Matrix``, ``RNN``, the exceptions) is
re-exported here; ``bitplane.layers`` has Linear, LSTM and GRU layers,
``bitplane.models`` the bundled models, and ``bitplane.sweep`` the
``bitplane-sweep`` tool.
"""

from ._bitplane import (
    DEFAULT_BITS,
    MAX_ACT_BITS,
    MAX_BITS,
    BackendError,
    Context,
    CorruptError,
    Error,
    FileError,
    InternalError,
    InvalidArgumentError,
    Matrix,
    NonFiniteError,
    OutOfMemoryError,
    OutOfRangeError,
    RNN,
    SizeOverflowError,
    UnsupportedError,
    VersionError,
    cpu_kernel_names,
    default_context,
    status_string,
    version,
)

from .row_planes import row_planes_from_scores

# The package is versioned with the C library it bundles (include/bitplane.h).
__version__ = version()

BACKENDS = ("cpu", "cuda", "opencl")
METHODS = ("uniform", "residual")
# Every Context(cpu_kernel=...) name, from the C library's own table.
CPU_KERNELS = cpu_kernel_names()

__all__ = [
    "BACKENDS",
    "CPU_KERNELS",
    "DEFAULT_BITS",
    "MAX_ACT_BITS",
    "MAX_BITS",
    "METHODS",
    "BackendError",
    "Context",
    "CorruptError",
    "Error",
    "FileError",
    "InternalError",
    "InvalidArgumentError",
    "Matrix",
    "NonFiniteError",
    "OutOfMemoryError",
    "OutOfRangeError",
    "RNN",
    "SizeOverflowError",
    "UnsupportedError",
    "VersionError",
    "cpu_kernel_names",
    "default_context",
    "library_path",
    "row_planes_from_scores",
    "status_string",
    "version",
]


def library_path() -> str:
    """Path of the bundled shared C library (``libbitplane.so.0``), for ctypes."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libbitplane.so.0")
