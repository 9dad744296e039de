"""Who may read the service's output: CURVE for ``tcp://``, file permissions for ``ipc://``.

CURVE (ZeroMQ's elliptic-curve encryption and authentication) uses pyzmq's own ``zmq.auth`` — certificate files
and the ZAP authenticator thread — rather than anything hand-written. The server's secret key file must be
private to its owner (no group/other bits), and the authorised-clients folder must not be writable by others
(anyone who could drop a key there could subscribe); otherwise the service refuses to start (``PUBLISH_KEYS``).

An ``ipc://`` socket is a file: it is created with a umask that leaves it owner+group only (0660), so only the
service user and the group of the HMI (``SupplementaryGroups=`` / the runtime directory's group) can connect.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from ims_runtime import errors
from ims_runtime.spec.schema import CurveSpec

#: ipc socket files: owner and group may connect, others may not
IPC_SOCKET_MODE = 0o660


def _keys_error(message: str, hint: str) -> errors.IMSError:
    return errors.IMSError(errors.PUBLISH_KEYS, message, hint)


def _resolve(path: str, spec_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or spec_dir is None else spec_dir / p


def check_private(path: Path) -> None:
    """Refuse a secret key file that group or others can read or write."""
    if not path.is_file():
        raise _keys_error(f"key file {path} does not exist", "create keys with `ims-runtime keys DIR`")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise _keys_error(f"secret key file {path} is accessible by group/others (mode {mode:04o})",
                          f"chmod 600 {path}")


def check_not_writable_by_others(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o022:
        raise _keys_error(f"{path} is writable by group/others (mode {mode:04o}): anyone could add a client key",
                          f"chmod go-w {path}")


class CurveServer:
    """The server side of CURVE: server keys set on the PUB socket, clients checked by a ZAP authenticator.

    Only subscribers whose public key is in ``authorized_clients_dir`` complete the handshake; any other client
    (no key, wrong key, plain TCP) gets nothing.
    """

    def __init__(self, public_key: bytes, secret_key: bytes, clients_dir: Path, context: zmq.Context) -> None:
        self.public_key = public_key
        self._secret_key = secret_key
        self.clients_dir = clients_dir
        self._auth = ThreadAuthenticator(context)
        self._auth.start()
        self.reload_clients()

    @classmethod
    def from_spec(cls, curve: CurveSpec, spec_dir: Path | None, context: zmq.Context) -> CurveServer:
        secret_file = _resolve(curve.server_secret_key_file, spec_dir)
        check_private(secret_file)
        try:
            public_key, secret_key = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as exc:
            raise _keys_error(f"cannot read the CURVE certificate {secret_file}: {exc}",
                              "create keys with `ims-runtime keys DIR`") from exc
        if not secret_key:
            raise _keys_error(f"{secret_file} holds no secret key (is it the public .key file?)",
                              "point server_secret_key_file at the *.key_secret file")
        clients_dir = _resolve(curve.authorized_clients_dir, spec_dir)
        if not clients_dir.is_dir() or not list(clients_dir.glob("*.key")):
            raise _keys_error(f"no client public keys (*.key) in {clients_dir}",
                              "copy each subscriber's public .key file there")
        check_not_writable_by_others(clients_dir)
        for key_file in clients_dir.glob("*.key"):
            check_not_writable_by_others(key_file)
        return cls(public_key, secret_key, clients_dir, context)

    def reload_clients(self) -> None:
        """Re-read the authorised client keys (called again on SIGHUP)."""
        self._auth.configure_curve(domain="*", location=str(self.clients_dir))

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE server; call before ``bind``."""
        socket.curve_secretkey = self._secret_key
        socket.curve_publickey = self.public_key
        socket.curve_server = True

    def close(self) -> None:
        self._auth.stop()


@contextlib.contextmanager
def private_ipc_socket(endpoint: str) -> Iterator[None]:
    """Around ``bind``: an ``ipc://`` socket file is created owner+group only (no window where others connect)."""
    if not endpoint.startswith("ipc://"):
        yield
        return
    old_umask = os.umask(0o777 & ~IPC_SOCKET_MODE)
    try:
        yield
    finally:
        os.umask(old_umask)
    path = Path(endpoint.removeprefix("ipc://"))
    if path.exists():
        os.chmod(path, IPC_SOCKET_MODE)


def client_socket_options(socket: zmq.Socket, server_public_key_file: Path, client_secret_key_file: Path) -> None:
    """Set up a SUB socket as a CURVE client (for ``listen`` and the example subscriber)."""
    server_public, _ = zmq.auth.load_certificate(server_public_key_file)
    check_private(client_secret_key_file)
    client_public, client_secret = zmq.auth.load_certificate(client_secret_key_file)
    if not client_secret:
        raise _keys_error(f"{client_secret_key_file} holds no secret key", "use the client's *.key_secret file")
    socket.curve_serverkey = server_public
    socket.curve_publickey = client_public
    socket.curve_secretkey = client_secret
