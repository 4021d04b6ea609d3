"""TLS and mTLS for `rlm serve`, and the rule that a non-loopback listener needs TLS.

    check_listen(settings.server, log)                 # refuses 0.0.0.0 without TLS, unless allowed
    port = add_port(server, settings.server.listen, server_credentials(settings.server))
    channel = grpc.aio.secure_channel(target, channel_credentials(ca, cert, key))   # a client

Settings (`[server]`): `tls_cert` and `tls_key` (both or neither) turn TLS on; `tls_client_ca` makes a
client certificate signed by that CA REQUIRED (mTLS). load_settings checks the files are readable PEM.
"""

from __future__ import annotations

import ipaddress
import logging
import os

import grpc
from grpc import aio

from ..errors import ConfigError, InvalidInputError
from ..settings import ServerSettings


def server_credentials(server: ServerSettings) -> grpc.ServerCredentials | None:
    """The server's TLS credentials from its settings; None when TLS is off (no tls_cert)."""
    if not server.tls_cert:
        return None
    chain = _read("server.tls_cert", server.tls_cert)
    key = _read("server.tls_key", server.tls_key)
    client_ca = _read("server.tls_client_ca", server.tls_client_ca) if server.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(
    ca: str | os.PathLike[str] | None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
) -> grpc.ChannelCredentials:
    """A client's TLS credentials: the CA to trust (a PEM file; None: the system's roots), and for mTLS
    its own certificate chain and key (PEM files, both or neither)."""
    if (cert is None) != (key is None):
        raise InvalidInputError("a client certificate and its key go together: give both or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read("the CA", ca) if ca is not None else None,
        private_key=_read("the client key", key) if key is not None else None,
        certificate_chain=_read("the client certificate", cert) if cert is not None else None,
    )


def is_loopback(listen: str) -> bool:
    """Whether `listen` (host:port or unix:PATH) is reachable from this machine only."""
    if listen.startswith("unix:"):
        return True
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def check_listen(server: ServerSettings, log: logging.Logger) -> None:
    """Refuse a non-loopback listener without TLS (its keys would cross the network in clear) unless
    `allow_insecure_listen` is set, which is logged as a warning on every start."""
    if server.tls_cert or is_loopback(server.listen):
        return
    if not server.allow_insecure_listen:
        raise ConfigError(
            f"server.listen {server.listen!r} is not a loopback address and TLS is off: API keys would "
            "cross the network in clear. Set server.tls_cert and server.tls_key, or "
            "server.allow_insecure_listen = true (behind a TLS-terminating proxy)"
        )
    log.warning(
        "INSECURE: listening on %s without TLS (server.allow_insecure_listen): API keys and data "
        "cross the network in clear unless a proxy in front terminates TLS",
        server.listen,
    )


def add_port(server: aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    """Bind `address` with TLS when `credentials` are given, else in clear; the port bound."""
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}") from None
    if port == 0 and not address.startswith("unix:"):
        raise ConfigError(f"cannot listen on {address}")
    return port


def _read(what: str, path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
