# SPDX-License-Identifier: GPL-3.0-or-later
"""CurveZMQ keys of the project's own ZeroMQ clients (``infercom rx``/``tx``, ``server_link``, ``--status``).

The inference server authenticates clients by their *public* key (an allow-list, docs/server.md "Security"),
so a client must present a fixed keypair of its own, loaded from a certificate file, never a random one.
Certificates are the files ``zmq.auth.create_certificates(dir, name)`` writes: ``name.key`` (public key only,
safe to hand out) and ``name.key_secret`` (public *and* secret key, keep it private).

    keys = load_client_keys("keys/server.key", "keys/rx.key_secret")
    apply(sock, keys)          # before sock.connect(...)

Keys are Z85 text, 40 characters each (32 raw bytes). Every failure is a ``ValueError`` naming the file.
zmq is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClientKeys", "load_client_keys", "optional_client_keys", "load_keypair", "load_public_key",
           "public_key_of", "apply", "Z85_KEY_LEN"]

#: length of a CURVE key in Z85 text (32 bytes -> 40 characters)
Z85_KEY_LEN = 40


@dataclass(frozen=True)
class ClientKeys:
    """The keys one client socket needs, all Z85 ``bytes`` of 40 characters: the server's public key and the
    client's own public and secret key (its public key is what the server's allow-list names)."""

    server_public: bytes
    public: bytes
    secret: bytes

    def __repr__(self) -> str:            # never print a secret key into a log
        return (f"ClientKeys(server_public={self.server_public.decode()!r}, public={self.public.decode()!r}, "
                "secret=<hidden>)")


def _check_key(key: bytes | None, what: str, path: str) -> bytes:
    import struct

    import zmq.utils.z85 as z85

    if key is None:
        raise ValueError(f"{path}: no {what} in this certificate")
    if len(key) != Z85_KEY_LEN:
        raise ValueError(f"{path}: the {what} must be {Z85_KEY_LEN} Z85 characters, got {len(key)}")
    try:
        z85.decode(key)
    except (ValueError, KeyError, TypeError, IndexError, struct.error):
        raise ValueError(f"{path}: the {what} is not valid Z85 text") from None
    return key


def _read_certificate(path: str | os.PathLike) -> tuple[str, bytes, bytes | None]:
    """``(path as text, public key, secret key or None)`` of a zmq certificate file, keys checked."""
    import zmq.auth

    p = str(path)
    if not p:
        raise ValueError("empty certificate file name")
    if not Path(p).exists():
        raise ValueError(f"{p}: certificate file does not exist (make one: mkdir -p keys && python -c "
                         "\"import zmq.auth; zmq.auth.create_certificates('keys', 'NAME')\")")
    if not Path(p).is_file():
        raise ValueError(f"{p}: not a file (expected a zmq certificate such as NAME.key or NAME.key_secret)")
    try:
        public, secret = zmq.auth.load_certificate(p)
    except OSError as exc:
        raise ValueError(f"{p}: cannot read the certificate ({exc.strerror or exc})") from None
    except ValueError:
        raise ValueError(f"{p}: not a zmq certificate (no public-key line; expected a file written by "
                         "zmq.auth.create_certificates)") from None
    public = _check_key(public, "public key", p)
    if secret is not None:
        _check_key(secret, "secret key", p)
    return p, public, secret


def load_public_key(cert_file: str | os.PathLike) -> bytes:
    """The Z85 public key (40 bytes) of a certificate file (``NAME.key`` or ``NAME.key_secret``)."""
    return _read_certificate(cert_file)[1]


def public_key_of(cert_file: str | os.PathLike) -> str:
    """The Z85 public key of a certificate as text (40 characters), e.g. for an allow-list entry."""
    return load_public_key(cert_file).decode("ascii")


def load_keypair(cert_file: str | os.PathLike) -> tuple[bytes, bytes]:
    """``(public, secret)`` Z85 keys of a *secret* certificate (``NAME.key_secret``): a client's own keypair,
    or the server's (``--curve-secret``). ``ValueError`` naming the file when it is missing, unreadable, not a
    zmq certificate, holds no secret key (a public-only ``.key``), or its secret key does not belong to its
    public key."""
    import zmq

    path, public, secret = _read_certificate(cert_file)
    if secret is None:
        raise ValueError(f"{path}: holds no secret key (a public-only .key file?); this needs the secret "
                         "certificate, NAME.key_secret")
    try:
        derived = zmq.curve_public(secret)
    except zmq.ZMQError as exc:
        raise ValueError(f"{path}: cannot derive the public key from the secret key ({exc})") from None
    if derived != public:
        raise ValueError(f"{path}: the secret key does not belong to the public key in the same file")
    return public, secret


def load_client_keys(server_key_file: str | os.PathLike, client_key_file: str | os.PathLike) -> ClientKeys:
    """Keys for a client socket: the server's public key from ``server_key_file`` (its ``NAME.key``; a
    ``.key_secret`` works too, only its public key is used) and the client's keypair from
    ``client_key_file``, which must hold the secret key (the client's ``NAME.key_secret``).

    Raises ``ValueError`` naming the file when a file is missing, unreadable, not a zmq certificate, when the
    client file holds no secret key, or when its secret key does not belong to its public key.
    """
    server_public = load_public_key(server_key_file)
    public, secret = load_keypair(client_key_file)
    return ClientKeys(server_public=server_public, public=public, secret=secret)


def optional_client_keys(server_key_file: str | None, client_key_file: str | None) -> ClientKeys | None:
    """``load_client_keys`` when both files are given, ``None`` when neither is (no CURVE); one without the
    other is a ``ValueError`` (a CURVE client needs both)."""
    server_key_file = str(server_key_file or "")
    client_key_file = str(client_key_file or "")
    if not server_key_file and not client_key_file:
        return None
    if not server_key_file or not client_key_file:
        raise ValueError("CurveZMQ needs both the server's public certificate (--curve-server-key) and the "
                         "client's secret certificate (--curve-key)")
    return load_client_keys(server_key_file, client_key_file)


def apply(socket, keys: ClientKeys | None):
    """Make ``socket`` a CURVE client of the server with ``keys`` (call before ``connect``); ``None``: leave
    it a plain socket. Returns the socket."""
    if keys is not None:
        socket.curve_serverkey = keys.server_public
        socket.curve_publickey = keys.public
        socket.curve_secretkey = keys.secret
    return socket
