"""TLS and mTLS on a real grpc.aio server, with a throwaway CA made in the test; the listen rule."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc import aio

from orchestrator.errors import ConfigError, InvalidInputError
from orchestrator.server.tls import (
    add_port,
    channel_credentials,
    check_listen,
    is_loopback,
    server_credentials,
)
from orchestrator.settings import ServerSettings, load_settings

NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


class Authority:
    """A CA that signs certificates into files under a directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name = directory, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self.cert = (
            self._builder(subject, subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name}-ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(
        self, subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=1))
        )

    def issue(self, common_name: str, *, server: bool) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = self._builder(subject, self.cert.subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        pair = Pair(self.directory / f"{common_name}.pem", self.directory / f"{common_name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return pair


@dataclass(frozen=True)
class PKI:
    ca: Authority
    other: Authority
    server: Pair
    client: Pair
    stranger: Pair  # a client certificate from another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = Authority(directory, "ours"), Authority(directory, "other")
    return PKI(
        ca,
        other,
        ca.issue("server", server=True),
        ca.issue("client", server=False),
        other.issue("stranger", server=False),
    )


async def _ping(request: bytes, context: aio.ServicerContext) -> bytes:
    return b"pong"


@pytest.fixture
async def start() -> AsyncIterator[object]:
    servers: list[aio.Server] = []

    async def starting(settings: ServerSettings) -> str:
        server = aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "test.v1.Ping", {"Ping": grpc.unary_unary_rpc_method_handler(_ping)}
                )
            ]
        )
        port = add_port(server, "127.0.0.1:0", server_credentials(settings))
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield starting
    for server in servers:
        await server.stop(None)


async def _ping_over(channel: aio.Channel) -> bytes:
    async with channel:
        return await channel.unary_unary("/test.v1.Ping/Ping")(b"", timeout=10)


def _tls(pki: PKI, *, mutual: bool) -> ServerSettings:
    return ServerSettings(
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_client_ca=str(pki.ca.path) if mutual else "",
    )


async def test_tls_server_accepts_a_tls_client_and_refuses_plaintext(pki: PKI, start: object) -> None:
    """With tls_cert and tls_key a client trusting the CA is served; a plaintext client is not."""
    target = await start(_tls(pki, mutual=False))  # type: ignore[operator]
    assert await _ping_over(aio.secure_channel(target, channel_credentials(pki.ca.path))) == b"pong"
    with pytest.raises(aio.AioRpcError) as refused:
        await _ping_over(aio.insecure_channel(target))
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(aio.AioRpcError):  # a client that trusts another CA does not trust this server
        await _ping_over(aio.secure_channel(target, channel_credentials(pki.other.path)))


async def test_mtls_requires_a_client_certificate_from_the_ca(pki: PKI, start: object) -> None:
    """With tls_client_ca a client certificate signed by that CA is required: one without a certificate,
    and one with a certificate from another CA, are refused."""
    target = await start(_tls(pki, mutual=True))  # type: ignore[operator]
    good = channel_credentials(pki.ca.path, pki.client.cert, pki.client.key)
    assert await _ping_over(aio.secure_channel(target, good)) == b"pong"
    for credentials in (
        channel_credentials(pki.ca.path),
        channel_credentials(pki.ca.path, pki.stranger.cert, pki.stranger.key),
    ):
        with pytest.raises(aio.AioRpcError) as refused:
            await _ping_over(aio.secure_channel(target, credentials))
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def test_no_tls_settings_no_credentials() -> None:
    """Without tls_cert the server has no credentials: it listens in clear (loopback by default)."""
    assert server_credentials(ServerSettings()) is None
    assert ServerSettings().listen == "127.0.0.1:50051"


def test_tls_files_are_checked_when_the_settings_load(pki: PKI, tmp_path: Path) -> None:
    """Cert and key go together, mTLS needs them, paths are absolute, and each file named must be a
    readable PEM file: each refusal names the key and the settings file."""
    with pytest.raises(InvalidInputError, match="set both or neither"):
        ServerSettings(tls_cert=str(pki.server.cert))
    with pytest.raises(InvalidInputError, match="needs tls_cert"):
        ServerSettings(tls_client_ca=str(pki.ca.path))
    with pytest.raises(InvalidInputError, match="absolute path"):
        ServerSettings(tls_cert="server.pem", tls_key="server.key")

    def load(text: str) -> str:
        path = tmp_path / "rlm.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_settings(path, {})
        assert str(path) in caught.value.message
        return caught.value.message

    key = f"tls_key = '{pki.server.key}'"
    missing = load(f"[server]\ntls_cert = '{tmp_path}/gone.pem'\n{key}\n")
    assert "server.tls_cert: cannot read" in missing and "gone.pem" in missing
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert "server.tls_cert" in load(f"[server]\ntls_cert = '{tmp_path}/junk.pem'\n{key}\n")
    assert "not a PEM file" in load(f"[server]\ntls_cert = '{tmp_path}/junk.pem'\n{key}\n")
    good = tmp_path / "good.toml"
    good.write_text(f"[server]\ntls_cert = '{pki.server.cert}'\n{key}\ntls_client_ca = '{pki.ca.path}'\n")
    assert load_settings(good, {}).server.tls_client_ca == str(pki.ca.path)


def test_client_credentials_need_cert_and_key_together(pki: PKI, tmp_path: Path) -> None:
    """A client certificate without its key is bad input; an unreadable CA file names the file."""
    with pytest.raises(InvalidInputError, match="give both or neither"):
        channel_credentials(pki.ca.path, cert=pki.client.cert)
    with pytest.raises(ConfigError, match=r"gone\.pem"):
        channel_credentials(tmp_path / "gone.pem")


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.1.2.3:1", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("unix:/run/rlm.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.0.0.5:50051", False),
        ("rlm.example.org:443", False),
    ],
)
def test_which_addresses_are_loopback(listen: str, loopback: bool) -> None:
    """Loopback addresses, localhost and Unix sockets are local; anything else, names included, is not."""
    assert is_loopback(listen) is loopback


def test_a_non_loopback_listener_needs_tls_or_an_explicit_override(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    """0.0.0.0 without TLS is refused; with TLS it is fine; allow_insecure_listen lets it start with a
    warning; loopback needs neither."""
    log = logging.getLogger("test.rlm.serve")
    with pytest.raises(ConfigError, match="allow_insecure_listen"):
        check_listen(ServerSettings(listen="0.0.0.0:50051"), log)
    check_listen(
        ServerSettings(listen="0.0.0.0:50051", tls_cert=str(pki.server.cert), tls_key=str(pki.server.key)),
        log,
    )
    check_listen(ServerSettings(), log)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="test.rlm.serve"):
        check_listen(ServerSettings(listen="0.0.0.0:50051", allow_insecure_listen=True), log)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "INSECURE" in caplog.records[0].getMessage()
