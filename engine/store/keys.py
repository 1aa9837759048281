"""Fixed-width, big-endian key encodings: every list and history is an LMDB range scan.

Integers are unsigned 8-byte big-endian; signed values (steps, timestamps) are shifted by
2**63 so that byte order equals numeric order. Floats use the classic order-preserving
bit trick, with NaN placed after every number (MLflow sorts NaN last).
"""
from __future__ import annotations

import hashlib
import math
import struct

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_F64 = struct.Struct(">d")
_I64_BIAS = 1 << 63
_U64_MAX = (1 << 64) - 1


def u64(n: int) -> bytes:
    return _U64.pack(n)


def read_u64(b: bytes, offset: int = 0) -> int:
    return _U64.unpack_from(b, offset)[0]


def u32(n: int) -> bytes:
    return _U32.pack(n)


def read_u32(b: bytes, offset: int = 0) -> int:
    return _U32.unpack_from(b, offset)[0]


def i64(n: int) -> bytes:
    """Signed 64-bit as order-preserving bytes."""
    return _U64.pack(n + _I64_BIAS)


def read_i64(b: bytes, offset: int = 0) -> int:
    return _U64.unpack_from(b, offset)[0] - _I64_BIAS


def desc_i64(n: int) -> bytes:
    """Signed 64-bit whose byte order is the reverse of numeric order (newest first)."""
    return _U64.pack(_U64_MAX - (n + _I64_BIAS))


def read_desc_i64(b: bytes, offset: int = 0) -> int:
    return _U64_MAX - _U64.unpack_from(b, offset)[0] - _I64_BIAS


# A 9-byte sortable float: class byte (0 = number, 1 = NaN) then the ordered bits.
def sortable_f64(x: float) -> bytes:
    if math.isnan(x):
        return b"\x01" + b"\x00" * 8
    (bits,) = _U64.unpack(_F64.pack(x + 0.0))  # +0.0 folds -0.0 into 0.0
    bits = bits ^ _U64_MAX if bits >> 63 else bits | (1 << 63)
    return b"\x00" + _U64.pack(bits)


def read_sortable_f64(b: bytes, offset: int = 0) -> float:
    if b[offset] == 1:
        return math.nan
    (bits,) = _U64.unpack_from(b, offset + 1)
    bits = bits ^ (1 << 63) if bits >> 63 else bits ^ _U64_MAX
    return _F64.unpack(_U64.pack(bits))[0]


SORTABLE_F64_WIDTH = 9


def run_key(run_id: str) -> bytes:
    """A run id (32 hex chars) as its 16 raw bytes."""
    return bytes.fromhex(run_id)


def run_id_of(key: bytes, offset: int = 0) -> str:
    return key[offset : offset + 16].hex()


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with `prefix` (None: no bound)."""
    b = bytearray(prefix)
    while b:
        if b[-1] != 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return None


# Index keys hold values as fixed-width hashes: a param's value (the param index) and a
# dataset's (name, digest) pair (the dataset index).
def param_hash(value: str) -> bytes:
    return hashlib.blake2b(value.encode(), digest_size=8).digest()


def dataset_hash(name: str, digest: str) -> bytes:
    return hashlib.blake2b(f"{name}\x00{digest}".encode(), digest_size=16).digest()
