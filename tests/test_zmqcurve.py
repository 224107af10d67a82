# SPDX-License-Identifier: GPL-3.0-or-later
"""infercom.zmqcurve: a client with the server's public key and its own certificate talks to a CURVE server
(over real tcp sockets, through a ZAP allow-list of client public keys, so the client's *fixed* key is what the
server sees); a wrong server key or a key not on the list gets nothing through; every bad file is a
ValueError naming it."""

import os

import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from infercom import zmqcurve

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


@pytest.fixture()
def certs(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("server", "rx", "other"):
        zmq.auth.create_certificates(keys, name)
    return keys


def _curve_router(ctx, keys_dir, allowed_dir=None, kind=zmq.ROUTER):
    """A ROUTER (or another ``kind``) with the server's certificate on a random loopback port; with
    ``allowed_dir`` a ZAP authenticator admits only the client public keys (``*.key``) in that folder."""
    auth = None
    if allowed_dir is not None:
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(allowed_dir))
    public, secret = zmq.auth.load_certificate(keys_dir / "server.key_secret")
    router = ctx.socket(kind)
    router.setsockopt(zmq.LINGER, 0)
    router.curve_secretkey, router.curve_publickey, router.curve_server = secret, public, True
    port = router.bind_to_random_port("tcp://127.0.0.1")
    return router, port, auth


def _exchange(ctx, port, keys):
    """A DEALER made a CURVE client with ``keys`` (``None``: plain) that connected and sent ``b"hello"``."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    zmqcurve.apply(dealer, keys)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hello")
    return dealer


def test_client_with_the_right_keys_talks_and_a_wrong_server_key_does_not(certs):
    ctx = zmq.Context()
    try:
        router, port, _ = _curve_router(ctx, certs)
        keys = zmqcurve.load_client_keys(certs / "server.key", certs / "rx.key_secret")
        assert keys.public == zmq.auth.load_certificate(certs / "rx.key")[0]
        assert len(keys.server_public) == len(keys.public) == len(keys.secret) == zmqcurve.Z85_KEY_LEN
        assert "secret=<hidden>" in repr(keys) and keys.secret.decode() not in repr(keys)
        good = _exchange(ctx, port, keys)
        assert router.poll(3000), "no message through CURVE with the right keys"
        ident, body = router.recv_multipart()
        assert body == b"hello"
        router.send_multipart([ident, b"reply"])          # and the way back works too
        assert good.poll(3000) and good.recv() == b"reply"
        good.close()
        wrong = zmqcurve.load_client_keys(certs / "other.key", certs / "rx.key_secret")   # not the server's key
        bad = _exchange(ctx, port, wrong)
        assert not router.poll(800), "a client with the wrong server key got a message through"
        bad.close()
        plain = _exchange(ctx, port, None)                 # apply(None): a plain socket, refused by CURVE
        assert not router.poll(500)
        plain.close()
    finally:
        ctx.destroy(linger=0)       # every socket, whatever the test reached (an open one would block term())


def test_allow_list_sees_the_fixed_client_key(certs, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "rx.key").write_bytes((certs / "rx.key").read_bytes())      # only rx's public certificate
    ctx = zmq.Context()
    auth = None
    try:
        router, port, auth = _curve_router(ctx, certs, allowed)
        rx = _exchange(ctx, port, zmqcurve.load_client_keys(certs / "server.key", certs / "rx.key_secret"))
        assert router.poll(3000), "the allowed client's key was refused"
        frames = router.recv_multipart(copy=False)
        assert frames[1].bytes == b"hello"
        assert frames[1].get("User-Id") == zmqcurve.public_key_of(certs / "rx.key")   # ZAP saw rx's key
        rx.close()
        other = _exchange(ctx, port, zmqcurve.load_client_keys(certs / "server.key",
                                                               certs / "other.key_secret"))
        assert not router.poll(800), "a client whose key is not on the list got through"
        other.close()
    finally:
        if auth is not None:
            auth.stop()
        ctx.destroy(linger=0)


def test_load_keypair_needs_the_secret_certificate(certs):
    public, secret = zmqcurve.load_keypair(certs / "server.key_secret")
    assert (public, secret) == zmq.auth.load_certificate(certs / "server.key_secret")
    assert zmq.curve_public(secret) == public
    with pytest.raises(ValueError, match="server.key: holds no secret key"):
        zmqcurve.load_keypair(certs / "server.key")


def test_public_key_of(certs):
    text = zmqcurve.public_key_of(certs / "server.key")
    assert isinstance(text, str) and len(text) == 40
    assert text == zmqcurve.public_key_of(certs / "server.key_secret")      # both files carry it
    assert text.encode() == zmq.auth.load_certificate(certs / "server.key")[0]


def test_bad_files_are_value_errors_naming_the_file(certs, tmp_path, monkeypatch):
    srv = certs / "server.key"
    missing = tmp_path / "nope.key_secret"
    with pytest.raises(ValueError, match="nope.key_secret.*does not exist"):
        zmqcurve.load_client_keys(srv, missing)
    with pytest.raises(ValueError, match="nope.key_secret.*does not exist"):
        zmqcurve.load_client_keys(missing, certs / "rx.key_secret")
    with pytest.raises(ValueError, match="not a file"):
        zmqcurve.load_client_keys(srv, certs)
    junk = tmp_path / "junk.key_secret"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x01binary")
    with pytest.raises(ValueError, match="junk.key_secret.*not a zmq certificate"):
        zmqcurve.load_client_keys(srv, junk)
    with pytest.raises(ValueError, match="public-only"):            # the .key where .key_secret is needed
        zmqcurve.load_client_keys(srv, certs / "rx.key")
    short = tmp_path / "short.key_secret"
    short.write_text('curve\n    public-key = "abc"\n    secret-key = "def"\n')
    with pytest.raises(ValueError, match="short.key_secret.*40 Z85"):
        zmqcurve.load_client_keys(srv, short)
    badz = tmp_path / "badz.key"
    badz.write_text('curve\n    public-key = "' + "#" * 40 + '"\n')
    with pytest.raises(ValueError, match="badz.key.*not valid Z85"):
        zmqcurve.load_client_keys(badz, certs / "rx.key_secret")
    mixed = tmp_path / "mixed.key_secret"                     # rx's public key with other's secret key
    pub_rx = zmq.auth.load_certificate(certs / "rx.key")[0].decode()
    sec_other = zmq.auth.load_certificate(certs / "other.key_secret")[1].decode()
    mixed.write_text(f'curve\n    public-key = "{pub_rx}"\n    secret-key = "{sec_other}"\n')
    with pytest.raises(ValueError, match="does not belong"):
        zmqcurve.load_client_keys(srv, mixed)
    locked = tmp_path / "locked.key_secret"
    locked.write_bytes((certs / "rx.key_secret").read_bytes())
    if os.geteuid() != 0:                                     # root reads anything: chmod cannot lock it
        locked.chmod(0)
        with pytest.raises(ValueError, match="locked.key_secret.*cannot read"):
            zmqcurve.load_client_keys(srv, locked)
    real_load = zmq.auth.load_certificate

    def _denied(path):                                        # the read error as the OS reports it
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_load(path)

    monkeypatch.setattr(zmq.auth, "load_certificate", _denied)
    with pytest.raises(ValueError, match="locked.key_secret: cannot read the certificate .Permission denied"):
        zmqcurve.load_client_keys(srv, locked)


def test_optional_client_keys_needs_both_or_neither(certs):
    assert zmqcurve.optional_client_keys(None, "") is None
    k = zmqcurve.optional_client_keys(str(certs / "server.key"), str(certs / "rx.key_secret"))
    assert k == zmqcurve.load_client_keys(certs / "server.key", certs / "rx.key_secret")
    with pytest.raises(ValueError, match="needs both"):
        zmqcurve.optional_client_keys(str(certs / "server.key"), None)
    with pytest.raises(ValueError, match="needs both"):
        zmqcurve.optional_client_keys("", str(certs / "rx.key_secret"))
