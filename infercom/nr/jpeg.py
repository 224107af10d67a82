# SPDX-License-Identifier: GPL-3.0-or-later
"""JPEG source coding of the NR baseline: Pillow (libjpeg) baseline JPEG, the quality chosen per image by
bisection to meet a bit budget, the two budget modes, and the encoder's operation count.

**Encoder.** :func:`encode_jpeg`: Pillow's baseline sequential JPEG, IJG quality scaling of the Annex K
tables (integer quality 1..95), standard Huffman tables (``optimize=False``), not progressive; RGB images are
converted to YCbCr (JFIF) and the chroma subsampled 4:2:0; grey images are one component. The bytes are the
complete JFIF file (headers included: they are part of what the TB must carry).

**Quality** (:func:`fit_quality`): the largest integer quality ``q`` in 1..95 whose file fits the budget,
``8 bytes(q) <= budget_bits``, found by bisection with the invariant "``lo`` fits, ``hi`` does not (or is
96)": so ``bytes(q) fits`` and ``bytes(q + 1) does not`` (unless ``q = 95``) hold exactly even where the size
is not monotone in the quality; about 8 trial encodes. A budget below the quality-1 file raises ValueError.

**Budget modes** (:func:`image_budget`; sizes in bits; ``R`` from :data:`infercom.nr.tbs.RATES`):

* ``channel-uses`` (default): the same payload channel uses per attempt as the InferCom link at the same
  block size and planes: ``S = infercom.link.layout(H, W, C, LinkConfig(bh, bw, planes)).n_symbols`` QPSK
  symbols, ``G = 2 S`` coded bits; the TB payload ``A`` follows from ``(G, R)`` by the TB-size rule of
  :mod:`infercom.nr.tbs` (largest segmentable multiple of 8 with ``A + CRCs <= floor(R G)``), and every
  attempt sends exactly ``E = sum_r E_r = G = 2 S`` coded bits (equality, not just ``<=``).
* ``source-rate``: JPEG bits / original bits ``8 H W C`` = ``1/(bh bw)`` (the papers' x-axis):
  ``A`` = the largest segmentable multiple of 8 ``<= floor(8 H W C / (bh bw))``, ``G`` = the smallest even
  number with ``A + CRCs <= R G`` (so the rule gives this ``A`` back from ``(G, R)``), ``S = G / 2``.

In both the JPEG budget is ``A`` bits: the JPEG is zero-padded to ``A`` bits (a JPEG file ends with the EOI
marker ``FF D9``, so the receiver strips trailing zero bytes exactly).

**Operation count** (:func:`jpeg_op_count`, one encode at the chosen quality; per 8x8 block unless said):

* colour conversion RGB -> YCbCr per pixel: 9 multiplies, 8 additions (6 in the sums + the two +128 chroma
  offsets), 3 roundings (20 operations; grey images: none);
* 4:2:0 chroma downsampling per chroma output sample (2 planes of ``Hp/2 x Wp/2``, ``Hp, Wp`` = the
  16-multiple MCU-padded size, edge replication is a copy): 3 additions, 1 multiply (x1/4), 1 rounding (the
  convention of :func:`infercom.source.op_count`);
* level shift: 64 subtractions;
* 2-D DCT as 16 one-dimensional 8-point DCTs (8 rows + 8 columns). Default ``dct="aan"``: Arai, Agui,
  Nakajima (1988), **5 multiplies + 29 additions** per 1-D DCT, its 8 output scale factors folded into the
  quantiser (Pennebaker & Mitchell, *JPEG Still Image Data Compression Standard*, 1993, §4.3.5; libjpeg
  ``jfdctflt.c``/``jfdctfst.c``): 80 multiplies + 464 additions per block. Alternatives: ``"loeffler"``
  (Loeffler, Ligtenberg, Moschytz 1989: 11 multiplies + 29 additions) and ``"islow"`` (libjpeg's default
  ``jfdctint.c``, the variant Pillow actually runs: 12 multiplies + 32 additions);
* quantisation: 64 multiplies (by the reciprocal of the, AAN-scaled, quantiser step) + 64 roundings;
* zigzag reordering: 0 (re-indexing);
* entropy coding (a documented *estimate*; Huffman-table look-ups and byte stuffing count 0): DC difference
  1 subtraction; 63 zero tests of the AC scan; 1 run-counter increment per zero AC coefficient;
  :data:`OPS_PER_CODED_COEF` = 8 per coded coefficient (the DC difference and every non-zero AC: sign test,
  one's-complement of negatives, magnitude category, run/size symbol, two bit-buffer insertions of shift +
  OR); 3 per ZRL symbol (a 16-zero run: insertion + counter decrement); 2 per EOB. The numbers of non-zero
  coefficients, ZRLs and EOBs come from :func:`quantised_coefficients`, a float model of the encoder
  (JFIF colour conversion, 2x2-mean chroma, orthonormal 8x8 DCT, the file's own quantisation tables, round
  half away from zero) that matches libjpeg's coefficients up to rare rounding differences.

All blocks of the MCU-padded planes are counted (for sizes that are multiples of 16 this is exactly what
libjpeg codes; at ragged edges libjpeg's dummy blocks cost less, so the count is an upper bound there).
The transmitter's total (:class:`infercom.nr.harq.NrImageTx`) = JPEG + CRC + LDPC
(:func:`infercom.nr.link.tx_op_count`); the quality search's trial encodes are reported separately.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from PIL import Image

from .. import link as _link
from .. import source as _source
from .segmentation import TbParams, tb_params
from .tbs import QM, coded_bits_for_tbs, largest_tbs_at_most, parse_code_rate, tbs_for_coded_bits

__all__ = [
    "BUDGET_MODES", "Q_MIN", "Q_MAX", "DCT_COSTS", "OPS_PER_CODED_COEF", "ZIGZAG", "encode_jpeg",
    "decode_jpeg", "JpegFit", "fit_quality", "Budget", "image_budget", "dct_matrix", "quantised_coefficients",
    "jpeg_op_count",
]

BUDGET_MODES = ("channel-uses", "source-rate")
Q_MIN, Q_MAX = 1, 95
#: 1-D 8-point DCT cost (multiplies, additions) from the literature, by algorithm name
DCT_COSTS = {"aan": (5, 29), "loeffler": (11, 29), "islow": (12, 32)}
#: entropy-coding operations per coded coefficient (estimate, see the module docstring)
OPS_PER_CODED_COEF = 8
OPS_PER_ZRL = 3
OPS_PER_EOB = 2


def _zigzag() -> np.ndarray:
    order = sorted(((i, j) for i in range(8) for j in range(8)),
                   key=lambda t: (t[0] + t[1], t[0] if (t[0] + t[1]) % 2 else -t[0]))
    z = np.array([8 * i + j for i, j in order], np.int64)
    z.setflags(write=False)
    return z


#: ZIGZAG[k] = natural (row-major) index of the k-th coefficient in zigzag order
ZIGZAG = _zigzag()


def _image(img) -> np.ndarray:
    return _source.as_image3(img)          # uint8 (H, W, 1|3), sides 1..4096, else ValueError


def encode_jpeg(img, quality: int) -> bytes:
    """uint8 image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> baseline JPEG file bytes at integer
    ``quality`` 1..95 (4:2:0 for RGB, standard Huffman tables)."""
    if not isinstance(quality, (int, np.integer)) or not Q_MIN <= quality <= Q_MAX:
        raise ValueError(f"quality must be an integer in {Q_MIN}..{Q_MAX}, got {quality!r}")
    a = _image(img)
    pil = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
    buf = io.BytesIO()
    kw = {"subsampling": 2} if a.shape[2] == 3 else {}
    pil.save(buf, "JPEG", quality=int(quality), optimize=False, progressive=False, **kw)
    data = buf.getvalue()
    if data[-2:] != b"\xff\xd9":
        raise RuntimeError("JPEG encoder output does not end with EOI")
    return data


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 ``(H, W, 3)`` (colour) or ``(H, W, 1)`` (grey); ValueError if not decodable."""
    try:
        with Image.open(io.BytesIO(bytes(data))) as im:
            if im.format != "JPEG":
                raise ValueError(f"not a JPEG file ({im.format})")
            im.load()
            a = np.asarray(im.convert("L" if im.mode == "L" else "RGB"), np.uint8)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode JPEG: {exc}") from None
    return a[:, :, None] if a.ndim == 2 else a


@dataclass(frozen=True)
class JpegFit:
    """Result of :func:`fit_quality`: ``quality`` (1..95), ``data`` (the JPEG bytes at that quality),
    ``budget_bits``, ``trials`` (encodes run), ``sizes`` ({quality: bytes} of every trial)."""

    quality: int
    data: bytes
    budget_bits: int
    trials: int
    sizes: dict = field(default_factory=dict)

    @property
    def bits(self) -> int:
        return 8 * len(self.data)


def fit_quality(img, budget_bits: int) -> JpegFit:
    """The largest quality in 1..95 whose JPEG of ``img`` is ``<= budget_bits`` bits (bisection, module
    docstring). ValueError when even quality 1 does not fit."""
    a = _image(img)
    budget_bits = int(budget_bits)
    enc: dict[int, bytes] = {}

    def fits(q: int) -> bool:
        if q not in enc:
            enc[q] = encode_jpeg(a, q)
        return 8 * len(enc[q]) <= budget_bits

    if not fits(Q_MIN):
        n = len(enc[Q_MIN])
        raise ValueError(f"a budget of {budget_bits} bits is too small for any JPEG of this "
                         f"{a.shape[0]}x{a.shape[1]}x{a.shape[2]} image (quality {Q_MIN} needs {8 * n} bits)")
    lo, hi = Q_MIN, Q_MAX + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return JpegFit(lo, enc[lo], budget_bits, len(enc), {q: len(d) for q, d in sorted(enc.items())})


@dataclass(frozen=True)
class Budget:
    """The bit budget of one image (module docstring). ``mode``; ``code_rate`` (Fraction); ``bits`` = JPEG
    budget = TB payload ``A``; ``n_symbols`` QPSK channel uses per attempt (``G/2``); ``tb`` the TB;
    ``infercom_symbols`` the InferCom link's payload symbols at (bh, bw, planes); ``source_bits`` =
    floor(8 H W C / (bh bw))."""

    mode: str
    code_rate: Fraction
    bits: int
    n_symbols: int
    tb: TbParams
    infercom_symbols: int
    source_bits: int

    def as_dict(self) -> dict:
        return {"budget_mode": self.mode, "code_rate": float(self.code_rate), "code_rate_str": str(self.code_rate),
                "budget_bits": self.bits, "tbs_bits": self.tb.A, "coded_bits": self.tb.G, "n_cb": self.tb.C,
                "bg": self.tb.bg, "payload_symbols": self.n_symbols, "infercom_symbols": self.infercom_symbols,
                "source_bits": self.source_bits}


def image_budget(height: int, width: int, channels: int, mode: str = "channel-uses", code_rate="1/3",
                 bh: int = 3, bw: int = 3, planes: int = 8) -> Budget:
    """The budget of an ``height x width x channels`` image in ``mode`` at code rate ``code_rate``, for the
    InferCom operating point (``bh x bw`` blocks, ``planes`` bit planes)."""
    if mode not in BUDGET_MODES:
        raise ValueError(f"budget mode must be one of {', '.join(BUDGET_MODES)}, got {mode!r}")
    R = parse_code_rate(code_rate)
    lay = _link.layout(height, width, channels, _link.LinkConfig(bh, bw, planes))
    src = 8 * lay.height * lay.width * lay.channels // (bh * bw)
    if mode == "channel-uses":
        G = QM * lay.n_symbols
        A = tbs_for_coded_bits(G, R)
    else:
        A = largest_tbs_at_most(src, R)
        G = coded_bits_for_tbs(A, R)
        if tbs_for_coded_bits(G, R) != A:     # the receiver's rule must give the same TB (tbs.py docstring)
            raise RuntimeError(f"TB-size rule is not invertible at A={A}, R={R}")
    tb = tb_params(A, float(R), G, QM)
    return Budget(mode, R, A, G // QM, tb, lay.n_symbols, src)


# ------------------------------------------------------------------------------------------ op count
def dct_matrix() -> np.ndarray:
    """float64 (8, 8) orthonormal DCT-II matrix ``D`` (JPEG's FDCT of a block ``X`` is ``D X D^T``)."""
    k = np.arange(8)
    d = np.sqrt(2.0 / 8.0) * np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16)
    d[0] /= np.sqrt(2.0)
    return d


def _pad(plane: np.ndarray, mult: int) -> np.ndarray:
    h, w = plane.shape
    return np.pad(plane, ((0, -h % mult), (0, -w % mult)), mode="edge")


def _blocks(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(h // 8, 8, w // 8, 8).swapaxes(1, 2).reshape(-1, 8, 8)


def quantised_coefficients(img, data: bytes) -> list[np.ndarray]:
    """Model of the quantised DCT coefficients of ``img`` encoded as the JPEG ``data`` (its quantisation
    tables): one int32 array ``(n_blocks, 64)`` in zigzag order per component (Y[, Cb, Cr]), blocks of the
    MCU-padded planes (module docstring)."""
    a = _image(img).astype(np.float64)
    with Image.open(io.BytesIO(bytes(data))) as im:
        qt = {k: np.asarray(v, np.float64).reshape(8, 8) for k, v in im.quantization.items()}  # natural order
    if a.shape[2] == 1:
        planes = [(_pad(a[:, :, 0], 8), 0)]
    else:
        r, g, b = a[:, :, 0], a[:, :, 1], a[:, :, 2]
        y = np.floor(0.299 * r + 0.587 * g + 0.114 * b + 0.5)
        cb = np.floor(-0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.5)
        cr = np.floor(0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.5)
        planes = [(_pad(y, 16), 0)]
        for c in (cb, cr):
            c = _pad(c, 16)
            h, w = c.shape
            c = np.floor(c.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) / 4.0 + 0.5)
            planes.append((c, 1))
    d = dct_matrix()
    out = []
    for plane, t in planes:
        blk = _blocks(plane - 128.0)
        coef = d @ blk @ d.T
        q = qt[t] if t in qt else qt[0]
        x = coef / q
        qc = (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32).reshape(-1, 64)
        out.append(qc[:, ZIGZAG])
    return out


def _entropy_counts(zz: np.ndarray) -> dict:
    """Coded AC coefficients, ZRL and EOB symbols of blocks ``zz`` (n, 64) in zigzag order."""
    ac = zz[:, 1:] != 0
    n_blk = zz.shape[0]
    nz = int(ac.sum())
    rows, cols = np.nonzero(ac)
    pos = cols + 1                                          # zigzag index 1..63
    first = np.ones(rows.size, bool)
    first[1:] = rows[1:] != rows[:-1]
    prev = np.where(first, 0, np.concatenate(([0], pos[:-1])))
    zrl = int(np.sum((pos - prev - 1) // 16))
    last = np.zeros(n_blk, np.int64)
    if rows.size:
        np.maximum.at(last, rows, pos)
    eob = int(np.sum(last < 63))
    return {"blocks": n_blk, "nonzero_ac": nz, "zrl": zrl, "eob": eob}


def jpeg_op_count(img, data: bytes, dct: str = "aan") -> dict:
    """Operation count of one JPEG encode of ``img`` into ``data`` (module docstring). Returns a dict with
    ``colour``, ``downsample``, ``level_shift``, ``dct``, ``quant``, ``zigzag``, ``entropy`` (operations),
    ``muls``, ``adds``, ``rounds`` (those stages' split), ``blocks``, ``coded_coefficients``, ``nonzero_ac``,
    ``zrl``, ``eob``, ``dct_algorithm``, ``total`` and ``per_pixel`` (total / (H W))."""
    if dct not in DCT_COSTS:
        raise ValueError(f"dct must be one of {', '.join(DCT_COSTS)}, got {dct!r}")
    a = _image(img)
    H, W, C = a.shape
    coefs = quantised_coefficients(a, data)
    cnt = {"blocks": 0, "nonzero_ac": 0, "zrl": 0, "eob": 0}
    for zz in coefs:
        for k, v in _entropy_counts(zz).items():
            cnt[k] += v
    nb = cnt["blocks"]
    m1, a1 = DCT_COSTS[dct]
    colour_m, colour_a, colour_r = (9 * H * W, 8 * H * W, 3 * H * W) if C == 3 else (0, 0, 0)
    n_chroma = 2 * (math.ceil(H / 16) * 8) * (math.ceil(W / 16) * 8) if C == 3 else 0
    ds_a, ds_m, ds_r = 3 * n_chroma, n_chroma, n_chroma
    dct_m, dct_a = 16 * m1 * nb, 16 * a1 * nb
    coded = nb + cnt["nonzero_ac"]                          # every DC difference + every non-zero AC
    entropy = (nb * 1 + 63 * nb + (63 * nb - cnt["nonzero_ac"]) + OPS_PER_CODED_COEF * coded
               + OPS_PER_ZRL * cnt["zrl"] + OPS_PER_EOB * cnt["eob"])
    ops = {
        "colour": colour_m + colour_a + colour_r,
        "downsample": ds_a + ds_m + ds_r,
        "level_shift": 64 * nb,
        "dct": dct_m + dct_a,
        "quant": 128 * nb,
        "zigzag": 0,
        "entropy": entropy,
    }
    total = sum(ops.values())
    ops.update(muls=colour_m + ds_m + dct_m + 64 * nb, adds=colour_a + ds_a + 64 * nb + dct_a,
               rounds=colour_r + ds_r + 64 * nb, blocks=nb, coded_coefficients=coded, **{
                   k: cnt[k] for k in ("nonzero_ac", "zrl", "eob")},
               dct_algorithm=dct, total=total, per_pixel=total / (H * W))
    return ops
