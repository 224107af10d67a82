# SPDX-License-Identifier: GPL-3.0-or-later
"""Server configuration: one validated dataclass, loadable from a YAML or JSON file, overridable from the CLI.

Every field has a unit in its name or docstring and a bound; an unknown key or an out-of-range value is a
``ValueError`` naming it. See docs/server.md for the table of fields.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from infercom.limits import MAX_ATTEMPT

__all__ = ["ServerConfig", "PolicyConfig", "load_config", "read_mapping_file", "feedback_address",
           "is_loopback_address"]

DEFAULT_BIND = "tcp://127.0.0.1:5555"


def _parse_tcp(addr: str) -> tuple[str, int]:
    if not isinstance(addr, str) or not addr.startswith("tcp://"):
        raise ValueError(f"address must look like tcp://HOST:PORT, got {addr!r}")
    u = urlparse(addr)
    if u.hostname is None or u.port is None:
        raise ValueError(f"address must look like tcp://HOST:PORT, got {addr!r}")
    return u.hostname, u.port


def feedback_address(bind: str) -> str:
    """The default feedback (PUB) address: the ``bind`` address with port + 1."""
    host, port = _parse_tcp(bind)
    if port == 0 or port >= 65535:
        raise ValueError(f"cannot derive the feedback port from {bind!r}; give --feedback-bind")
    return f"tcp://{host}:{port + 1}"


def is_loopback_address(addr: str) -> bool:
    """True when ``addr`` is tcp on 127.0.0.0/8, ::1 or localhost, or an ipc/inproc endpoint."""
    if addr.startswith(("ipc://", "inproc://")):
        return True
    host, _ = _parse_tcp(addr)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PolicyConfig:
    """The ACK/NACK policy.

    ``thresholds``: metric name -> threshold; an attempt passes when every metric is on the good side
    (``>=`` for higher-is-better metrics, ``<=`` otherwise). ``max_attempts``: attempts per image (first
    included) before the server answers FAIL. ``mode``: ``auto`` | ``chase`` | ``selective`` | ``refine``
    (what a NACK asks for; ``auto``: the frames never received or deeply faded if there are few of them,
    a finer block size when the channel was good but the image still failed, else Chase).
    ``worst_margin_db``: in ``auto``/``selective``, frames whose combined SNR is this far below the median are
    resent. ``selective_max_fraction``: above this fraction of frames, resend all (Chase) instead.
    ``refine_min_snr_db``: in ``auto``, refine when the combined Es/N0 of the image is at least this.
    ``clean_db``: an observation whose expected PSNR (``qoe.reliability.expected_psnr`` of its posterior, dB) is
    at least this is *error-free* (the low-res image within ~2.5 grey levels RMS): retransmitting it cannot
    help, so it is acknowledged whatever the QoE metrics say when its block area ``bh*bw`` is at most
    ``clean_max_block_area`` (the rates the gate is calibrated for: 3x3 and finer), and answered ``refine``
    (the compression, not the channel, is the limit) when a coarser rate fails the QoE.
    ``early_nack``: metrics that score the observation alone (``needs_restored = False``: ``reliability``) are
    evaluated before the restorer; when one fails below the attempt limit, the attempt is NACKed at once without
    restoring (the same decision the full gate would reach: every thresholded metric must pass), and the record
    says so (``early``). At the limit the image is always restored (a FAIL still delivers its best image).
    ``min_received_fraction``: an attempt whose image has less than this fraction of its payload symbols
    received (over all attempts) is NACKed (FAIL at the limit) without restoring: the default QoE set fails it
    anyway (consistency <= received fraction < 0.9, reliability < 14 dB), and the server never builds a whole
    image for a few frames (memory grows with what arrived, not with what a header declares).
    """

    thresholds: dict[str, float] = field(default_factory=dict)
    max_attempts: int = 4
    mode: str = "auto"
    worst_margin_db: float = 6.0
    selective_max_fraction: float = 0.5
    refine_min_snr_db: float = 10.0
    clean_db: float = 40.0
    clean_max_block_area: int = 9
    min_received_fraction: float = 0.5
    early_nack: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.thresholds, dict):
            raise ValueError("policy.thresholds must be a mapping metric -> threshold")
        for k, v in self.thresholds.items():
            if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or not math.isfinite(v):
                raise ValueError(f"policy.thresholds[{k!r}] must be a finite number, got {v!r}")
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= MAX_ATTEMPT + 1:
            raise ValueError(f"policy.max_attempts must be 1..{MAX_ATTEMPT + 1}, got {self.max_attempts!r}")
        if self.mode not in ("auto", "chase", "selective", "refine"):
            raise ValueError(f"policy.mode must be auto|chase|selective|refine, got {self.mode!r}")
        if not 0 <= self.worst_margin_db <= 60:
            raise ValueError(f"policy.worst_margin_db must be in 0..60 dB, got {self.worst_margin_db}")
        if not 0 < self.selective_max_fraction <= 1:
            raise ValueError(f"policy.selective_max_fraction must be in (0, 1], got {self.selective_max_fraction}")
        if not -30 <= self.refine_min_snr_db <= 100:
            raise ValueError(f"policy.refine_min_snr_db must be in -30..100 dB, got {self.refine_min_snr_db}")
        if isinstance(self.clean_db, bool) or not isinstance(self.clean_db, (int, float)) \
                or not 20 <= self.clean_db <= 100:
            raise ValueError(f"policy.clean_db must be in 20..100 dB, got {self.clean_db!r}")
        if isinstance(self.clean_max_block_area, bool) or not isinstance(self.clean_max_block_area, int) \
                or not 0 <= self.clean_max_block_area <= 64:
            raise ValueError(f"policy.clean_max_block_area must be an integer in 0..64 (0: never), "
                             f"got {self.clean_max_block_area!r}")
        if isinstance(self.min_received_fraction, bool) or not isinstance(self.min_received_fraction, (int, float)) \
                or not 0 <= self.min_received_fraction <= 1:
            raise ValueError(f"policy.min_received_fraction must be in [0, 1], got {self.min_received_fraction!r}")
        if not isinstance(self.early_nack, bool):
            raise ValueError(f"policy.early_nack must be true or false, got {self.early_nack!r}")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs. Times in seconds, sizes in counts of items unless named ``_bytes``."""

    bind: str = DEFAULT_BIND                 # ROUTER: soft frames in, status requests
    feedback_bind: str | None = None         # PUB: feedback out (None: bind port + 1)
    allow_remote: bool = False               # binding a non-loopback address needs this (and ideally CURVE)
    curve_secret_file: str | None = None     # zmq.auth secret certificate: enables CurveZMQ on both sockets
    curve_allow_file: str | None = None      # allow-list: client public keys -> tx ids (needs curve_secret_file)
    restorer: str | None = None              # None: receiver_server.restorers.DEFAULT_RESTORER
    restorer_config: dict[str, Any] = field(default_factory=dict)
    qoe: tuple[str, ...] = ()                # metric names (empty: the QoE package's offline default)
    qoe_config: dict[str, dict[str, Any]] = field(default_factory=dict)   # per metric name
    device: str = "cpu"
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    assembly_timeout_s: float = 1.0          # an attempt is complete this long after its last frame
    image_ttl_s: float = 120.0               # forget an image this long after its last activity
    max_images: int = 256                    # images held at once (oldest evicted beyond)
    max_image_symbols: int = 1 << 25         # larger images are rejected ("oversized"): 12 bytes/symbol each
    max_tx_pixels: int = 1 << 24             # pixels of undecided images per transmitter (beyond: "tx_pixel_cap")
    max_buffer_bytes: int = 1 << 30          # soft symbols of all images held + the arrays of queued jobs
    max_queue: int = 64                      # attempts waiting for inference (beyond: no answer, busy)
    max_streams: int = 4096                  # replay-guard memory (RX streams, (stream_id, seq))
    max_frame_digests: int = 1 << 17         # replay-guard memory (digests of accepted frames, ids excluded)
    workers: int = 1                         # inference threads
    batch_max: int = 1                       # attempts restored in one batched forward pass (1: no batching)
    batch_wait_ms: float = 10.0              # longest an attempt waits for others to batch with
    artifacts_dir: str | None = None         # save observation/restored/soft-symbol sample per attempt (.npz)
    records_file: str | None = None          # append one JSON record per finished image
    log_file: str | None = None              # JSON-lines log (None: stderr)
    log_level: str = "info"
    reject_log_per_s: float = 20.0           # at most this many reject log lines per second and reason

    def __post_init__(self) -> None:
        for name in ("bind",) + (("feedback_bind",) if self.feedback_bind else ()):
            addr = getattr(self, name)
            _parse_tcp(addr)
            if not self.allow_remote and not is_loopback_address(addr):
                raise ValueError(f"{name}={addr!r} is not a loopback address; pass allow_remote "
                                 "(--allow-remote) to expose the server, ideally with CurveZMQ")
        if self.restorer is not None and (not isinstance(self.restorer, str) or not self.restorer):
            raise ValueError("restorer must be a name")
        if isinstance(self.qoe, str):
            object.__setattr__(self, "qoe", tuple(q for q in self.qoe.split(",") if q))
        object.__setattr__(self, "qoe", tuple(self.qoe))
        if not isinstance(self.policy, PolicyConfig):
            if isinstance(self.policy, dict):
                object.__setattr__(self, "policy", PolicyConfig(**self.policy))
            else:
                raise ValueError("policy must be a mapping")
        bounds = {"assembly_timeout_s": (0.001, 600), "image_ttl_s": (0.01, 86400), "max_images": (1, 100000),
                  "max_buffer_bytes": (1 << 16, 1 << 40), "max_image_symbols": (1, 1 << 28),
                  "max_tx_pixels": (1, 1 << 30), "max_queue": (1, 100000), "max_streams": (1, 10 ** 6),
                  "max_frame_digests": (1, 1 << 24), "workers": (1, 64), "reject_log_per_s": (0, 1e6),
                  "batch_max": (1, 64), "batch_wait_ms": (0, 10000)}
        for k, (lo, hi) in bounds.items():
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ValueError(f"{k} must be in [{lo}, {hi}], got {v!r}")
        if self.curve_allow_file and not self.curve_secret_file:
            raise ValueError("curve_allow_file (--curve-allow) needs curve_secret_file (--curve-secret): the "
                             "allow-list maps CurveZMQ client keys")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError(f"log_level must be debug|info|warning|error, got {self.log_level!r}")

    @property
    def feedback_address(self) -> str:
        return self.feedback_bind or feedback_address(self.bind)

    def replace(self, **kw: Any) -> "ServerConfig":
        return dataclasses.replace(self, **kw)


def read_mapping_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The mapping in a ``.json`` file (JSON) or any other file (YAML); ValueError naming ``what`` and the path
    when it does not exist or holds something else (an empty YAML file is an empty mapping)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what} {p} does not exist")
    text = p.read_text()
    if p.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml
        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{what} {p} must hold a mapping, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """Read a YAML/JSON mapping of :class:`ServerConfig` fields (``policy`` as a nested mapping) and apply
    ``overrides`` (``None`` values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_mapping_file(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown server config keys {unknown}; known: {sorted(known)}")
    if "policy" in data and isinstance(data["policy"], dict):
        pk = {f.name for f in dataclasses.fields(PolicyConfig)}
        bad = sorted(set(data["policy"]) - pk)
        if bad:
            raise ValueError(f"unknown policy keys {bad}; known: {sorted(pk)}")
        data["policy"] = PolicyConfig(**data["policy"])
    return ServerConfig(**data)
