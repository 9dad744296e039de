"""Who can read the output: CURVE on tcp:// (real sockets, real handshakes), permissions on ipc:// and key files."""

import os
import stat
import time

import pytest
import zmq
import zmq.auth

from ims_runtime import errors
from ims_runtime.publish.security import CurveServer, client_socket_options
from ims_runtime.publish.zmq_pub import Publisher
from ims_runtime.spec.schema import CurveSpec, PublishSpec


@pytest.fixture
def keys(tmp_path):
    """server + an authorised client + an intruder, as `ims-runtime keys` writes them."""
    from conftest import cli

    result = cli("keys", str(tmp_path / "keys"), "server", "hmi", "intruder")
    assert result.returncode == 0, result.stderr
    allowed = tmp_path / "allowed"
    allowed.mkdir(mode=0o755)
    (allowed / "hmi.key").write_bytes((tmp_path / "keys" / "hmi.key").read_bytes())
    os.chmod(allowed, 0o755)
    return tmp_path / "keys", allowed


def _subscriber(context, endpoint, server_key=None, client_secret=None):
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    if server_key is not None:
        client_socket_options(sub, server_key, client_secret)
    sub.connect(endpoint)
    return sub


def _received(publisher, subs, seconds=3.0):
    counts = [0] * len(subs)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        publisher.publish("telemetry", {"schema_version": 1, "n": n})
        n += 1
        for i, sub in enumerate(subs):
            while sub.poll(0):
                sub.recv_multipart()
                counts[i] += 1
        time.sleep(0.02)
    return counts


def test_only_the_authorised_client_receives(keys):
    key_dir, allowed = keys
    context = zmq.Context()
    curve = CurveServer.from_spec(CurveSpec(server_secret_key_file=str(key_dir / "server.key_secret"),
                                            authorized_clients_dir=str(allowed)), None, context)
    publisher = Publisher("tcp://127.0.0.1:*", context=context, curve=curve)
    endpoint = publisher.socket.getsockopt_string(zmq.LAST_ENDPOINT)
    server_key = key_dir / "server.key"
    subs = [_subscriber(context, endpoint, server_key, key_dir / "hmi.key_secret"),       # authorised
            _subscriber(context, endpoint, server_key, key_dir / "intruder.key_secret"),  # valid key, not allowed
            _subscriber(context, endpoint)]                                              # plain TCP, no CURVE
    try:
        hmi, intruder, plain = _received(publisher, subs)
        assert hmi > 10
        assert intruder == 0 and plain == 0
    finally:
        for sub in subs:
            sub.close(0)
        publisher.close()
        context.term()


def test_secret_key_readable_by_others_is_refused(keys):
    key_dir, allowed = keys
    os.chmod(key_dir / "server.key_secret", 0o644)
    with pytest.raises(errors.IMSError) as exc:
        CurveServer.from_spec(CurveSpec(server_secret_key_file=str(key_dir / "server.key_secret"),
                                        authorized_clients_dir=str(allowed)), None, zmq.Context.instance())
    assert exc.value.code is errors.PUBLISH_KEYS and "chmod 600" in exc.value.hint


def test_clients_folder_writable_by_others_is_refused(keys):
    key_dir, allowed = keys
    os.chmod(allowed, 0o777)
    with pytest.raises(errors.IMSError) as exc:
        CurveServer.from_spec(CurveSpec(server_secret_key_file=str(key_dir / "server.key_secret"),
                                        authorized_clients_dir=str(allowed)), None, zmq.Context.instance())
    assert exc.value.code is errors.PUBLISH_KEYS


def test_public_key_given_as_server_secret_is_refused(keys):
    key_dir, allowed = keys
    os.chmod(key_dir / "server.key", 0o600)
    with pytest.raises(errors.IMSError, match="no secret key"):
        CurveServer.from_spec(CurveSpec(server_secret_key_file=str(key_dir / "server.key"),
                                        authorized_clients_dir=str(allowed)), None, zmq.Context.instance())


def test_keys_command_writes_private_secret_files(keys):
    key_dir, _ = keys
    for name in ("server", "hmi", "intruder"):
        assert stat.S_IMODE((key_dir / f"{name}.key_secret").stat().st_mode) == 0o600


def test_ipc_socket_is_owner_and_group_only(tmp_path):
    publisher = Publisher(f"ipc://{tmp_path}/ims.sock")
    try:
        assert stat.S_IMODE((tmp_path / "ims.sock").stat().st_mode) == 0o660
    finally:
        publisher.close()


@pytest.mark.parametrize("endpoint, ok", [
    ("tcp://127.0.0.1:5555", True),   # loopback: only this machine
    ("tcp://0.0.0.0:5555", False),    # every interface: needs CURVE
    ("tcp://10.0.0.2:5555", False),
    ("ipc:///run/ims-runtime/ims.sock", True),
])
def test_tcp_beyond_loopback_requires_curve(endpoint, ok):
    if ok:
        PublishSpec(endpoint=endpoint)
    else:
        with pytest.raises(ValueError, match="publish.curve"):
            PublishSpec(endpoint=endpoint)
