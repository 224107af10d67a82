# SPDX-License-Identifier: GPL-3.0-or-later
"""Transmitter identity under CurveZMQ: which client keys may deliver frames for which transmitter ids.

The allow-list is a YAML or JSON file (``--curve-allow FILE``, config ``curve_allow_file``)::

    clients:
      - name: rx-lab-1                 # optional, for logs
        key_file: keys/rx1.key         # a zmq.auth certificate (public part is enough), relative to this file
        tx_ids: [1, 2, 3]              # transmitter ids this client may deliver frames for ("all": 0..255)
        status: true                   # may ask for the server's status (default false)
      - public_key: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   # or the Z85 public key itself (40 chars)
        tx_ids: [9]

With it the server runs a ZAP handler that admits only the listed keys (a CURVE handshake with any other key
fails: the client delivers nothing), and every soft frame's ``tx_id`` is checked against its sender's entry
(``unauthorised_tx`` otherwise). Without CURVE none of this is possible: see docs/server.md, Security.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infercom.limits import MAX_TX_ID

__all__ = ["AllowList", "load_allow_list"]

_ENTRY_KEYS = {"name", "public_key", "key_file", "tx_ids", "status"}


@dataclass(frozen=True)
class AllowList:
    """``tx_ids``: Z85 public key -> the transmitter ids it may use; ``status``: keys that may ask for status;
    ``names``: Z85 key -> entry name (for logs)."""

    tx_ids: dict[str, frozenset[int]]
    status: frozenset[str]
    names: dict[str, str]

    def admits(self, key_z85: str) -> bool:
        return key_z85 in self.tx_ids

    def may_send(self, key_z85: str, tx_id: int) -> bool:
        return tx_id in self.tx_ids.get(key_z85, frozenset())

    def may_ask_status(self, key_z85: str) -> bool:
        return key_z85 in self.status


def _z85_key(entry: dict, base: Path, i: int) -> str:
    from zmq.utils import z85

    from infercom.zmqcurve import load_public_key

    if ("public_key" in entry) == ("key_file" in entry):
        raise ValueError(f"allow-list client {i}: give exactly one of public_key, key_file")
    if "key_file" in entry:
        p = Path(entry["key_file"])
        p = p if p.is_absolute() else base / p
        try:
            key = load_public_key(p).decode("ascii")
        except ValueError as exc:
            raise ValueError(f"allow-list client {i}: key_file {exc}") from None
    else:
        key = entry["public_key"]
        if not isinstance(key, str):
            raise ValueError(f"allow-list client {i}: public_key must be a Z85 string")
    try:
        raw = z85.decode(key.encode("ascii"))
    except Exception:                     # noqa: BLE001 - a malformed string raises several kinds
        raw = b""
    if len(key) != 40 or len(raw) != 32:
        raise ValueError(f"allow-list client {i}: {key!r} is not a 40-character Z85 CurveZMQ public key")
    return key


def load_allow_list(path: str | Path) -> AllowList:
    """Read and validate an allow-list file; ValueError naming the entry and field that is wrong."""
    from .config import read_mapping_file

    p = Path(path)
    data = read_mapping_file(p, "allow-list file")
    if set(data) != {"clients"} or not isinstance(data["clients"], list):
        raise ValueError(f"allow-list {p} must be a mapping with one key 'clients' holding a list")
    tx: dict[str, frozenset[int]] = {}
    status: set[str] = set()
    names: dict[str, str] = {}
    for i, entry in enumerate(data["clients"]):
        if not isinstance(entry, dict):
            raise ValueError(f"allow-list client {i} must be a mapping")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise ValueError(f"allow-list client {i}: unknown keys {unknown}; known: {sorted(_ENTRY_KEYS)}")
        key = _z85_key(entry, p.parent, i)
        if key in tx:
            raise ValueError(f"allow-list client {i}: key {key} is listed twice")
        ids = entry.get("tx_ids", [])
        if ids == "all":
            ids = list(range(MAX_TX_ID + 1))
        if not isinstance(ids, list) or any(isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= MAX_TX_ID
                                            for t in ids):
            raise ValueError(f"allow-list client {i}: tx_ids must be a list of integers 0..{MAX_TX_ID} or 'all'")
        st = entry.get("status", False)
        if not isinstance(st, bool):
            raise ValueError(f"allow-list client {i}: status must be true or false")
        tx[key] = frozenset(ids)
        if st:
            status.add(key)
        names[key] = str(entry.get("name", f"client{i}"))
    return AllowList(tx_ids=tx, status=frozenset(status), names=names)
