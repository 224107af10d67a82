# SPDX-License-Identifier: GPL-3.0-or-later
"""Image-level HARQ of the NR baseline: one JPEG per transport block, CRC-triggered retransmission.

An image is JPEG-coded to the budget of :mod:`infercom.nr.jpeg`, zero-padded to the TB payload ``A`` and
sent as one transport block (:func:`infercom.nr.link.nr_encode_tb`). After each attempt the receiver combines
the LLRs into the TB's soft buffer (:class:`infercom.nr.ratematch.HarqBuffer`) and decodes; the TB CRC
decides. A TB whose CRC still fails after ``max_attempts`` attempts is lost, and with it the whole image
(the cliff: there is no partial image). Every image therefore ends in ``success`` or an explicit ``failed``.

* ``harq="chase"``: every attempt resends redundancy version 0 (the same bits): LLR addition at the same
  positions (maximum-ratio combining).
* ``harq="ir"`` (incremental redundancy): attempt ``k`` (0-based) sends rv ``RV_SEQUENCE[k mod 4]`` =
  0, 2, 3, 1, 0, ...: new parity positions fill the circular buffer, repeated positions add.

Transmitter and receiver share only :attr:`NrImageTx.params`, a dict of small ints (33 bits of information,
:data:`PARAM_FIELDS`; :func:`pack_params` / :func:`unpack_params` give the integer):

====================  =====  ===============================================================================
field                 bits   meaning
====================  =====  ===============================================================================
``n_symbols``         24     QPSK symbols per attempt ``S = G/2`` (1 .. 2**24 - 1); the TB has ``G = 2 S``
                             coded bits and ``A = tbs_for_coded_bits(G, R)`` payload bits
``rate_code``         4      index of the code rate ``R`` in :data:`infercom.nr.tbs.RATES`
``harq``              1      0 = Chase, 1 = incremental redundancy (fixes the rv of every attempt)
``max_attempts``      4      attempt limit 1..16, sent as ``max_attempts - 1``
====================  =====  ===============================================================================

The JPEG length is not sent: the JPEG ends with its EOI marker ``FF D9`` and the pad is zero bytes.
The image size, colour and quality are inside the JPEG. The attempt index (0-based) travels with each
attempt (the frame header's ``attempt`` field in the server setting).

LLRs follow :mod:`infercom.qpsk` (``L = log P(b=0)/P(b=1)``, float32, bit order ``b(2i), b(2i+1)`` of
:func:`infercom.nr.link.qpsk_llrs`), one attempt = ``G`` LLRs in transmission order.
"""

from __future__ import annotations

import numpy as np

from .. import source as _source
from ..limits import MAX_ATTEMPT
from .jpeg import BUDGET_MODES, Budget, decode_jpeg, fit_quality, image_budget, jpeg_op_count
from .ldpc import encode_xors
from .link import encode_rows_needed, nr_decode_tb_detail, nr_encode_tb, qpsk_modulate, tx_op_count
from .ratematch import RV_SEQUENCE, HarqBuffer
from .segmentation import TbParams
from .tbs import QM, rate_code, rate_from_code, tb_for_coded_bits

__all__ = [
    "HARQ_MODES", "MAX_ATTEMPTS", "PARAM_FIELDS", "PARAM_BITS", "rv_for_attempt", "check_params",
    "pack_params", "unpack_params", "tb_from_params", "NrImageTx", "NrImageRx",
]

HARQ_MODES = ("chase", "ir")
MAX_ATTEMPTS = MAX_ATTEMPT + 1     # the header's attempt field: 0..MAX_ATTEMPT
#: (name, bit width) of the TB description, in packing order (most significant first)
PARAM_FIELDS = (("n_symbols", 24), ("rate_code", 4), ("harq", 1), ("max_attempts", 4))
PARAM_BITS = sum(w for _, w in PARAM_FIELDS)


def rv_for_attempt(harq: str, attempt: int) -> int:
    """Redundancy version of 0-based ``attempt``: 0 for Chase, ``RV_SEQUENCE[attempt % 4]`` for IR."""
    if harq not in HARQ_MODES:
        raise ValueError(f"harq must be one of {', '.join(HARQ_MODES)}, got {harq!r}")
    if not isinstance(attempt, (int, np.integer)) or not 0 <= attempt < MAX_ATTEMPTS:
        raise ValueError(f"attempt must be an int in 0..{MAX_ATTEMPTS - 1}, got {attempt!r}")
    return 0 if harq == "chase" else RV_SEQUENCE[int(attempt) % len(RV_SEQUENCE)]


def check_params(params: dict) -> dict:
    """Validate a params dict (exactly the :data:`PARAM_FIELDS` keys, ints in range); returns a copy."""
    if not isinstance(params, dict) or set(params) != {k for k, _ in PARAM_FIELDS}:
        raise ValueError(f"params must have exactly the keys {[k for k, _ in PARAM_FIELDS]}, got {params!r}")
    out = {}
    for k, _ in PARAM_FIELDS:
        v = params[k]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"params[{k!r}] must be an int, got {v!r}")
        out[k] = int(v)
    if not 1 <= out["n_symbols"] < 2 ** 24:
        raise ValueError(f"n_symbols must be in 1..{2 ** 24 - 1}, got {out['n_symbols']}")
    rate_from_code(out["rate_code"])
    if out["harq"] not in (0, 1):
        raise ValueError(f"harq must be 0 (chase) or 1 (ir), got {out['harq']}")
    if not 1 <= out["max_attempts"] <= MAX_ATTEMPTS:
        raise ValueError(f"max_attempts must be in 1..{MAX_ATTEMPTS}, got {out['max_attempts']}")
    return out


def pack_params(params: dict) -> int:
    """The params as one integer of :data:`PARAM_BITS` (33) bits, fields in :data:`PARAM_FIELDS` order."""
    p = check_params(params)
    p["max_attempts"] -= 1
    v = 0
    for k, w in PARAM_FIELDS:
        v = (v << w) | p[k]
    return v


def unpack_params(value: int) -> dict:
    """Inverse of :func:`pack_params` (validated)."""
    if not isinstance(value, (int, np.integer)) or not 0 <= value < 2 ** PARAM_BITS:
        raise ValueError(f"packed params must be an int in 0..2**{PARAM_BITS}-1, got {value!r}")
    v = int(value)
    out = {}
    for k, w in reversed(PARAM_FIELDS):
        out[k] = v & ((1 << w) - 1)
        v >>= w
    out["max_attempts"] += 1
    return check_params({k: out[k] for k, _ in PARAM_FIELDS})


def tb_from_params(params: dict) -> TbParams:
    """The transport block the params describe (TB-size rule of :mod:`infercom.nr.tbs`)."""
    p = check_params(params)
    return tb_for_coded_bits(QM * p["n_symbols"], rate_from_code(p["rate_code"]))


def _bytes_to_bits(data: bytes, n_bits: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, np.uint8))          # MSB of each byte first
    if bits.size > n_bits:
        raise ValueError(f"{len(data)} bytes do not fit a TB of {n_bits} bits")
    out = np.zeros(n_bits, np.uint8)
    out[:bits.size] = bits
    return out


class NrImageTx:
    """Transmitter of one image over the NR baseline.

    ``img`` uint8 (H, W[, C]); ``budget_mode`` ``"channel-uses"`` | ``"source-rate"`` and ``code_rate``
    (``"1/3"``, a Fraction or float of :data:`infercom.nr.tbs.RATES`), ``bh, bw, planes``: the InferCom
    operating point the budget refers to (:func:`infercom.nr.jpeg.image_budget`); ``harq`` ``"ir"`` |
    ``"chase"``; ``max_attempts`` 1..16; ``dct``: the DCT algorithm of the operation count.

    Attributes: ``budget`` (:class:`~infercom.nr.jpeg.Budget`), ``tb`` (TbParams), ``fit``
    (:class:`~infercom.nr.jpeg.JpegFit`), ``jpeg`` (bytes), ``quality``, ``params`` (see the module
    docstring), ``n_symbols`` (QPSK symbols per attempt), ``n_coded_bits`` (``G = 2 n_symbols``).
    Raises ValueError when the budget is too small for any JPEG of the image (no fallback).
    """

    def __init__(self, img, budget_mode: str = "channel-uses", code_rate="1/3", bh: int = 3, bw: int = 3,
                 planes: int = 8, harq: str = "ir", max_attempts: int = 4, dct: str = "aan"):
        if budget_mode not in BUDGET_MODES:
            raise ValueError(f"budget_mode must be one of {', '.join(BUDGET_MODES)}, got {budget_mode!r}")
        if harq not in HARQ_MODES:
            raise ValueError(f"harq must be one of {', '.join(HARQ_MODES)}, got {harq!r}")
        if not isinstance(max_attempts, (int, np.integer)) or not 1 <= max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be in 1..{MAX_ATTEMPTS}, got {max_attempts!r}")
        self.img = _source.as_image3(img)
        H, W, C = self.img.shape
        self.budget: Budget = image_budget(H, W, C, budget_mode, code_rate, bh, bw, planes)
        self.tb: TbParams = self.budget.tb
        if self.budget.n_symbols >= 2 ** 24:
            raise ValueError(f"{self.budget.n_symbols} symbols per attempt exceed the params' 24-bit field")
        self.fit = fit_quality(self.img, self.budget.bits)
        self.jpeg: bytes = self.fit.data
        self.quality: int = self.fit.quality
        self.bh, self.bw, self.planes = int(bh), int(bw), int(planes)
        self.harq = harq
        self.max_attempts = int(max_attempts)
        self.dct = dct
        self.params = check_params({"n_symbols": self.budget.n_symbols, "rate_code": rate_code(self.budget.code_rate),
                                    "harq": HARQ_MODES.index(harq), "max_attempts": self.max_attempts})
        assert tb_from_params(self.params) == self.tb
        self._bits = _bytes_to_bits(self.jpeg, self.tb.A)
        self._coded: dict[int, np.ndarray] = {}
        self._jpeg_ops: dict | None = None

    @property
    def n_symbols(self) -> int:
        return self.budget.n_symbols

    @property
    def n_coded_bits(self) -> int:
        return self.tb.G

    def rv(self, attempt: int) -> int:
        """Redundancy version of 0-based ``attempt`` (ValueError beyond ``max_attempts``)."""
        if not isinstance(attempt, (int, np.integer)) or not 0 <= attempt < self.max_attempts:
            raise ValueError(f"attempt must be in 0..{self.max_attempts - 1}, got {attempt!r}")
        return rv_for_attempt(self.harq, int(attempt))

    def coded_bits(self, attempt: int) -> np.ndarray:
        """uint8 ``(G,)`` coded bits of 0-based ``attempt`` (rate-matched with its rv, interleaved, the CBs
        concatenated: the QPSK input, :func:`infercom.nr.link.qpsk_modulate`). Read-only."""
        rv = self.rv(attempt)
        if rv not in self._coded:
            f, _ = nr_encode_tb(self._bits, self.tb.R, rv=rv, params=self.tb)
            c = np.concatenate(f)
            c.setflags(write=False)
            self._coded[rv] = c
        return self._coded[rv]

    def symbols(self, attempt: int) -> np.ndarray:
        """complex64 ``(n_symbols,)``: the attempt's QPSK symbols (38.211, unit mean power)."""
        return qpsk_modulate(self.coded_bits(attempt))

    def op_count(self, attempts: int = 1) -> dict:
        """Transmitter operations for the first ``attempts`` attempts: ``jpeg`` (one encode,
        :func:`infercom.nr.jpeg.jpeg_op_count`), ``crc_tb``, ``crc_cb`` (:func:`infercom.nr.link.tx_op_count`),
        ``ldpc`` (XORs of the parity rows the rvs sent so far need: rv 0 only for Chase, retransmitted bits
        are reused), ``total``; ``jpeg_trials`` encodes of the quality search and ``jpeg_detail``."""
        if not 1 <= attempts <= self.max_attempts:
            raise ValueError(f"attempts must be in 1..{self.max_attempts}, got {attempts}")
        if self._jpeg_ops is None:
            self._jpeg_ops = jpeg_op_count(self.img, self.jpeg, self.dct)
        t = tx_op_count(self.tb, 0)
        rows = encode_rows_needed(self.tb, tuple({self.rv(k) for k in range(attempts)}))
        ldpc = self.tb.C * encode_xors(self.tb.code, rows)
        total = self._jpeg_ops["total"] + t["crc_tb"] + t["crc_cb"] + ldpc
        return {"jpeg": self._jpeg_ops["total"], "crc_tb": t["crc_tb"], "crc_cb": t["crc_cb"], "ldpc": ldpc,
                "ldpc_rows": rows, "total": total, "jpeg_trials": self.fit.trials, "jpeg_detail": self._jpeg_ops}

    def info(self) -> dict:
        """Record fields: the budget (:meth:`~infercom.nr.jpeg.Budget.as_dict`), JPEG quality/bytes/bits,
        trials, HARQ mode and limit, params and their packed value."""
        return {**self.budget.as_dict(), "jpeg_quality": self.quality, "jpeg_bytes": len(self.jpeg),
                "jpeg_bits": 8 * len(self.jpeg), "jpeg_trials": self.fit.trials, "harq": self.harq,
                "max_attempts": self.max_attempts, "params": dict(self.params),
                "params_packed": pack_params(self.params)}


class NrImageRx:
    """Receiver of one image: ``NrImageRx(params)``, then per received attempt ``add_attempt(llr, attempt)``
    and ``decode()``.

    ``max_iter`` LDPC iterations per decode (early stop on), ``threads`` decoder threads. ``status``:
    ``"pending"`` (no success yet, attempts left), ``"success"`` (CRC passed and the JPEG decoded), or
    ``"failed"`` (every one of ``max_attempts`` attempts combined, CRC still failing: the image is lost).
    """

    def __init__(self, params: dict, max_iter: int = 10, threads: int = 1):
        self.params = check_params(params)
        self.tb: TbParams = tb_from_params(self.params)
        self.harq = HARQ_MODES[self.params["harq"]]
        self.max_attempts = self.params["max_attempts"]
        self.max_iter = int(max_iter)
        self.threads = int(threads)
        self._buf = HarqBuffer(self.tb)
        self._pending: list[tuple[np.ndarray, int]] = []
        self.attempts: list[int] = []
        self._result: tuple | None = None
        self.status = "pending"

    @property
    def n_coded_bits(self) -> int:
        return self.tb.G

    def add_attempt(self, llr, attempt: int) -> None:
        """Combine the ``G`` LLRs (float32, transmission order) of 0-based ``attempt`` (each at most once, in
        any order, < ``max_attempts``). ValueError for a wrong size, non-finite LLRs, a repeated or
        out-of-range attempt."""
        if not isinstance(attempt, (int, np.integer)) or not 0 <= attempt < self.max_attempts:
            raise ValueError(f"attempt must be in 0..{self.max_attempts - 1}, got {attempt!r}")
        if int(attempt) in self.attempts:
            raise ValueError(f"attempt {attempt} was already combined")
        x = np.asarray(llr)
        if x.shape != (self.tb.G,):
            raise ValueError(f"expected {self.tb.G} LLRs of shape ({self.tb.G},), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"LLRs must be floating point, got {x.dtype}")
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("LLRs must be finite")
        self._pending.append((x, rv_for_attempt(self.harq, int(attempt))))
        self.attempts.append(int(attempt))
        self._result = None

    def decode(self) -> tuple[bool, np.ndarray | None, dict]:
        """Decode the soft buffer with every attempt added so far: ``(ok, image, info)``.

        ``ok``: TB CRC (and every CB CRC) passed and the JPEG decoded; ``image`` uint8 (H, W, C) or None;
        ``info``: ``attempts`` (count), ``rvs``, ``crc_ok``, ``cb_crc_ok`` (CBs passing), ``n_cb``,
        ``iterations_mean``/``iterations_max`` (LDPC, over CBs), ``jpeg_bytes`` (or None), ``status``,
        ``error`` (None or why the image was not accepted). Deterministic: a repeated call without new
        attempts returns the same result."""
        if not self.attempts:
            raise ValueError("no attempt has been added")
        if self._result is not None:
            return self._result
        for llr, rv in self._pending[:-1]:
            self._buf.add(llr, rv)
        llr, rv = self._pending[-1]
        self._pending = []
        r = nr_decode_tb_detail(llr, self.tb, rv=rv, harq=self._buf, max_iter=self.max_iter,
                                threads=self.threads)
        img, data, err = None, None, None
        if r.crc_ok:
            data = np.packbits(r.bits).tobytes().rstrip(b"\x00")
            if data[-2:] != b"\xff\xd9":
                err = "CRC passed but the payload is not a complete JPEG"
            else:
                try:
                    img = decode_jpeg(data)
                except ValueError as exc:
                    err = f"CRC passed but {exc}"
        else:
            err = "TB CRC failed"
        ok = img is not None
        if ok:
            self.status = "success"
        elif len(self.attempts) >= self.max_attempts:
            self.status = "failed"
        info = {"attempts": len(self.attempts), "rvs": list(self._buf.rvs), "crc_ok": bool(r.crc_ok),
                "cb_crc_ok": int(np.sum(r.cb_crc_ok)), "n_cb": self.tb.C,
                "iterations_mean": float(np.mean(r.iterations)), "iterations_max": int(np.max(r.iterations)),
                "jpeg_bytes": None if data is None else len(data), "status": self.status, "error": err,
                "jpeg": data if ok else None}
        self._result = (ok, img, info)
        return self._result
