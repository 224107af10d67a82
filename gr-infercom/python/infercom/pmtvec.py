# SPDX-License-Identifier: GPL-3.0-or-later
"""Fast numpy <-> PMT uniform-vector conversion.

pybind11's ``pmt.init_c32vector(n, array)`` and ``pmt.to_python(vec)`` go element by element (~100 ns and
~70 ns per complex sample here), which alone would cap a PDU chain at a few Msps.  The uniform-vector API also
hands out a raw pointer to the vector's storage as a PyCapsule (``uniform_vector_elements`` /
``uniform_vector_writable_elements``); a ``memmove`` through it costs ~1-2 ns per sample.  The slow, official
path remains as a fallback and is what the tests compare against (bit-exact).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pmt

_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_get_name = ctypes.pythonapi.PyCapsule_GetName
_get_name.restype = ctypes.c_char_p
_get_name.argtypes = [ctypes.py_object]

# dtype -> (is_x, make_x(n, fill), fill value, slow init, slow elements)
_KINDS = {
    np.dtype(np.complex64): (pmt.is_c32vector, pmt.make_c32vector, 0j, pmt.init_c32vector, pmt.c32vector_elements),
    np.dtype(np.float32): (pmt.is_f32vector, pmt.make_f32vector, 0.0, pmt.init_f32vector, pmt.f32vector_elements),
    np.dtype(np.uint8): (pmt.is_u8vector, pmt.make_u8vector, 0, pmt.init_u8vector, pmt.u8vector_elements),
}

_fast_ok = True


def _capsule_address(cap) -> int:
    return _get_pointer(cap, _get_name(cap))


def to_pmt(array: np.ndarray):
    """A 1-D complex64 / float32 / uint8 numpy array -> a new PMT uniform vector (a copy)."""
    global _fast_ok
    a = np.ascontiguousarray(array)
    kind = _KINDS.get(a.dtype)
    if kind is None or a.ndim != 1:
        raise ValueError(f"to_pmt: need a 1-D complex64, float32 or uint8 array, got {a.dtype} {a.shape}")
    _, make, fill, init, _ = kind
    if a.size == 0:
        return make(0, fill)
    if _fast_ok:
        try:
            vec = make(a.size, fill)
            ctypes.memmove(_capsule_address(pmt.uniform_vector_writable_elements(vec, 0)), a.ctypes.data, a.nbytes)
            return vec
        except Exception:  # noqa: BLE001 - a pmt build without capsules: use the official path from now on
            _fast_ok = False
    return init(a.size, a)


def from_pmt(vec, dtype) -> np.ndarray:
    """A PMT uniform vector of ``dtype`` -> a new numpy array; ValueError when ``vec`` is another type."""
    global _fast_ok
    dt = np.dtype(dtype)
    kind = _KINDS.get(dt)
    if kind is None:
        raise ValueError(f"from_pmt: unsupported dtype {dt}")
    is_x, _, _, _, elements = kind
    if not is_x(vec):
        raise ValueError(f"expected a PMT vector of {dt}, got {pmt.write_string(vec)[:60]!r}")
    n = pmt.length(vec)
    if n == 0:
        return np.zeros(0, dtype=dt)
    if _fast_ok:
        try:
            addr = _capsule_address(pmt.uniform_vector_elements(vec, 0))
            buf = (ctypes.c_char * (n * dt.itemsize)).from_address(addr)
            return np.frombuffer(buf, dtype=dt, count=n).copy()
        except Exception:  # noqa: BLE001
            _fast_ok = False
    return np.asarray(elements(vec), dtype=dt)


def view_pmt(vec, dtype) -> np.ndarray:
    """A read-only numpy *view* of a PMT uniform vector's storage (no copy); ValueError when ``vec`` is another
    type.  The view is valid only while ``vec`` is alive: use it inside a message handler, copy what must stay.
    Falls back to a copy (:func:`from_pmt`) where the fast path is unavailable."""
    dt = np.dtype(dtype)
    kind = _KINDS.get(dt)
    if kind is None:
        raise ValueError(f"view_pmt: unsupported dtype {dt}")
    if not kind[0](vec):
        raise ValueError(f"expected a PMT vector of {dt}, got {pmt.write_string(vec)[:60]!r}")
    n = pmt.length(vec)
    if n == 0 or not _fast_ok:
        return from_pmt(vec, dt)
    try:
        addr = _capsule_address(pmt.uniform_vector_elements(vec, 0))
    except Exception:  # noqa: BLE001
        return from_pmt(vec, dt)
    a = np.frombuffer((ctypes.c_char * (n * dt.itemsize)).from_address(addr), dtype=dt, count=n)
    a.flags.writeable = False
    return a
