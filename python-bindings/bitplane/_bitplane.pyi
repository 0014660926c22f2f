"""Type stubs for the C extension bitplane._bitplane."""

import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]
_Path = Union[str, bytes, os.PathLike]

MAX_BITS: int
DEFAULT_BITS: int
MAX_ACT_BITS: int

def version() -> str: ...
def default_context() -> Context: ...
def status_string(code: int) -> str: ...

class Error(RuntimeError):
    status: int

class InvalidArgumentError(Error, ValueError): ...
class OutOfRangeError(Error, ValueError): ...
class SizeOverflowError(Error, ValueError): ...
class NonFiniteError(Error, ValueError): ...
class OutOfMemoryError(Error, MemoryError): ...
class UnsupportedError(Error): ...
class FileError(Error, OSError): ...
class CorruptError(Error): ...
class VersionError(Error): ...
class BackendError(Error): ...
class InternalError(Error): ...

class Context:
    """A backend with its thread pool and scratch memory."""

    def __init__(
        self,
        backend: str = "cpu",
        threads: int = 0,
        cpu_kernel: str = "auto",
        device: int = 0,
        platform: int = 0,
        gpu_kernel: str = "auto",
    ) -> None: ...
    @property
    def backend(self) -> str: ...
    @property
    def threads(self) -> int: ...
    def cpu_kernel_name(self, act_bits: int = 8, cols: int = 512, batch: int = 1) -> str: ...

class Matrix:
    """A quantized weight matrix (k one-bit planes, most significant first)."""

    @classmethod
    def quantize(
        cls,
        w: _F32,
        bits: int = 8,
        method: str = "uniform",
        clip: float = 0.0,
        group_size: int = 32,
        rotation: int = ...,  # 256, or 0 (none) for non-negative inputs
        rotation_seed: int = 0,
        calibration: Optional[_F32] = None,
        calibration_planes: int = 0,
        context: Optional[Context] = None,
        nonnegative_inputs: bool = False,
        row_planes: Optional[Sequence[int]] = None,
    ) -> Matrix: ...
    def gemm(
        self,
        x: _F32,
        planes: Optional[int] = None,
        act_bits: Optional[int] = None,
        bias: Optional[_F32] = None,
        column_planes: Optional[Sequence[int]] = None,
        act_scale: float = 0.0,
        out: Optional[_F32] = None,
        context: Optional[Context] = None,
        activation: Optional[str] = None,
    ) -> _F32: ...
    def dequantize(self, planes: Optional[int] = None, out: Optional[_F32] = None) -> _F32: ...
    def prefix_error(self, n: int) -> float: ...
    def bytes_read(self, planes: Optional[int] = None) -> int: ...
    def save(self, path: _Path) -> None: ...
    @classmethod
    def load(cls, path: _Path, context: Optional[Context] = None) -> Matrix: ...
    def to_bytes(self) -> bytes: ...
    @classmethod
    def from_bytes(cls, data: bytes, context: Optional[Context] = None) -> Matrix: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def bits(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def group_size(self) -> int: ...
    @property
    def rotation(self) -> int: ...
    @property
    def row_planes(self) -> npt.NDArray[np.uint8]: ...
    @property
    def context(self) -> Context: ...

def _row_planes_from_scores(
    scores: _F32, budget: float, classes: int, bits: int
) -> npt.NDArray[np.uint8]: ...

_Planes = Union[None, int, Sequence[int]]

class RNN:
    """An LSTM or GRU stack run in C, one sequence per call (bitplane_rnn.h)."""

    @classmethod
    def quantize(
        cls,
        cell: str,
        weights: Sequence[Tuple[_F32, _F32, Optional[_F32], Optional[_F32]]],
        bits: int = 8,
        method: str = "uniform",
        clip: float = 0.0,
        context: Optional[Context] = None,
        split_gates: bool = False,
        row_planes: Optional[
            Sequence[Optional[Tuple[Optional[Sequence[int]], Optional[Sequence[int]]]]]
        ] = None,
        group_size: int = 32,
        rotation: int = ...,  # 0 (none); a block needs float mode
        rotation_seed: int = 0,
    ) -> RNN: ...
    def forward(
        self,
        x: _F32,
        steps: int,
        h0: Optional[_F32] = None,
        c0: Optional[_F32] = None,
        planes_ih: _Planes = None,
        planes_hh: _Planes = None,
        act_bits: Optional[int] = None,
        integer: bool = False,
    ) -> Tuple[_F32, _F32, Optional[_F32]]: ...
    def step(
        self,
        x: _F32,
        h: _F32,
        c: Optional[_F32] = None,
        planes_ih: _Planes = None,
        planes_hh: _Planes = None,
        act_bits: Optional[int] = None,
        integer: bool = False,
        column_planes: Optional[Sequence[int]] = None,
    ) -> None: ...
    def prefix_error(self, layer: int, op: str, n: int, gate: int = -1) -> float: ...
    def dequantize(self, layer: int, op: str, planes: int, gate: int = -1) -> _F32: ...
    def row_planes(self, layer: int, op: str, gate: int = -1) -> npt.NDArray[np.uint8]: ...
    def bytes_read(self, layer: int, op: str, planes: int = 0, gate: int = -1) -> int: ...
    def save(self, path: _Path) -> None: ...
    @classmethod
    def load(cls, path: _Path, context: Optional[Context] = None) -> RNN: ...
    def to_bytes(self) -> bytes: ...
    @classmethod
    def from_bytes(cls, data: bytes, context: Optional[Context] = None) -> RNN: ...
    @property
    def cell(self) -> str: ...
    @property
    def layers(self) -> int: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def gates(self) -> int: ...
    @property
    def split_gates(self) -> bool: ...
    @property
    def bits(self) -> int: ...
