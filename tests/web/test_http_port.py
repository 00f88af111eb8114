"""The server's HTTP port on a real in-process server: liveness, sign-in and its refusals, the metrics'
credential, TLS with the public API's certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from shoal.server.app import ServerConfig, ShoalServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def secure_server(server: ShoalServer) -> ShoalServer:
    """The server of `tests/web/conftest.py` (TLS and account keys: the default)."""
    return server


def _client(srv: ShoalServer) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cadata=srv.security.ca.cert_pem.decode())
    jar = aiohttp.CookieJar(unsafe=True)  # (cookies of an IP address host)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), cookie_jar=jar)


async def test_https_with_the_public_apis_certificate_and_liveness_open(secure_server: ShoalServer) -> None:
    assert secure_server.http_url.startswith("https://127.0.0.1:")
    async with _client(secure_server) as http, http.get(secure_server.http_url + "/healthz") as r:
        assert r.status == 200


async def test_metrics_need_the_administrators_key(secure_server: ShoalServer) -> None:
    url = secure_server.http_url + "/metrics"
    assert secure_server.accounts is not None
    account_key = secure_server.accounts.get("default").primary
    async with _client(secure_server) as http:
        async with http.get(url) as r:
            assert r.status == 401
            assert "Bearer" in r.headers["WWW-Authenticate"]
        async with http.get(url, headers={"Authorization": f"Bearer {account_key}"}) as r:
            assert r.status == 401
        async with http.get(url, headers={"Authorization": f"Bearer {secure_server.admin_key}"}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")


async def test_pages_need_a_session_and_a_wrong_key_opens_none(secure_server: ShoalServer) -> None:
    base = secure_server.http_url
    assert secure_server.accounts is not None
    key = secure_server.accounts.get("default").primary
    async with _client(secure_server) as http:
        async with http.get(base + "/", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"].startswith("/login")
        async with http.get(base + "/api/anything") as r:
            assert r.status == 401
        form = {"account": "default", "key": "wrong", "next": "/"}
        async with http.post(base + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 401
            assert "do not match" in await r.text()
        assert not http.cookie_jar.filter_cookies(base)
        # The administrator's key opens no dashboard session (it holds no resources).
        form = {"account": "_admin", "key": secure_server.admin_key, "next": "/"}
        async with http.post(base + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 401
        form = {"account": "default", "key": key, "next": "//elsewhere.example/"}
        async with http.post(base + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/"  # never off this server
            cookie = r.cookies["shoal_session"]
            assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
            assert key not in str(cookie.value)
        async with http.post(base + "/logout", allow_redirects=False) as r:
            assert r.status == 302
        async with http.get(base + "/api/anything") as r:
            assert r.status == 401


async def test_off_means_no_http_port(tmp_path: Path) -> None:
    srv = ShoalServer(
        ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False, http_listen="off")
    )
    await srv.start()
    try:
        assert srv.http_url == "" and srv.web is None
    finally:
        await srv.stop()


async def test_plaintext_server_serves_http_without_credentials(tmp_path: Path) -> None:
    srv = ShoalServer(
        ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False, secure=False)
    )
    await srv.start()
    try:
        assert srv.http_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(srv.http_url + "/metrics") as r:
            assert r.status == 200
    finally:
        await srv.stop()


def _lands_on(base: str, location: str) -> str:
    """The origin a browser goes to for this Location (its URL parser drops tabs and newlines first)."""
    from yarl import URL

    cleaned = "".join(c for c in location if c not in "\t\n\r")
    target = URL(base).join(URL(cleaned))
    return f"{target.scheme}://{target.host}:{target.port}"


@pytest.mark.parametrize(
    "target", ["/\t/elsewhere.example/", "/\n/elsewhere.example/", "/\r\n/elsewhere.example", " //elsewhere.example"]
)
async def test_the_page_after_sign_in_stays_on_this_server(secure_server: ShoalServer, target: str) -> None:
    base = secure_server.http_url
    assert secure_server.accounts is not None
    key = secure_server.accounts.get("default").primary
    async with _client(secure_server) as http:
        form = {"account": "default", "key": key, "next": target}
        async with http.post(base + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 302
            assert _lands_on(base, r.headers["Location"]) == _lands_on(base, "/")


async def test_the_sign_in_redirect_keeps_the_whole_page_address(secure_server: ShoalServer) -> None:
    from yarl import URL

    async with (
        _client(secure_server) as http,
        http.get(secure_server.http_url + "/?a=1&next=//elsewhere.example", allow_redirects=False) as r,
    ):
        assert r.status == 302
        assert URL(r.headers["Location"]).query["next"] == "/?a=1&next=//elsewhere.example"


def test_a_plaintext_servers_http_port_stays_on_loopback(tmp_path: Path) -> None:
    from shoal.server.app import NotLoopbackError

    config = ServerConfig(
        data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False, secure=False, http_listen="0.0.0.0:0"
    )
    with pytest.raises(NotLoopbackError):
        ShoalServer(config)
    # (unless the operator insists, as for the API's port)
    config.allow_non_loopback = True
    ShoalServer(config)


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://elsewhere.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
)
async def test_another_site_cannot_sign_a_browser_in_or_out(
    secure_server: ShoalServer, headers: dict[str, str]
) -> None:
    base = secure_server.http_url
    assert secure_server.accounts is not None
    key = secure_server.accounts.get("default").primary
    form = {"account": "default", "key": key, "next": "/"}
    async with _client(secure_server) as http:
        # (A form of another site posting someone's key would sign the browser in to that account.)
        async with http.post(base + "/login", data=form, headers=headers, allow_redirects=False) as r:
            assert r.status == 403
        assert not http.cookie_jar.filter_cookies(base)
        # The page's own form, and a client that is no browser (no Origin), sign in.
        own = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
        async with http.post(base + "/login", data=form, headers=own, allow_redirects=False) as r:
            assert r.status == 302
        async with http.post(base + "/logout", headers=headers, allow_redirects=False) as r:
            assert r.status == 403
        async with http.get(base + "/api/whoami") as r:
            assert r.status == 200
    async with _client(secure_server) as http, http.post(base + "/login", data=form, allow_redirects=False) as r:
        assert r.status == 302


async def test_pages_carry_security_headers(secure_server: ShoalServer) -> None:
    base = secure_server.http_url
    async with _client(secure_server) as http:
        for path in ("/login", "/", "/static/shoal.js", "/api/pools", "/healthz"):
            async with http.get(base + path, allow_redirects=False) as r:
                csp = r.headers.get("Content-Security-Policy", "")
                assert "frame-ancestors 'none'" in csp, path
                assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
                assert r.headers.get("X-Frame-Options") == "DENY", path
                assert r.headers.get("X-Content-Type-Options") == "nosniff", path
                assert r.headers.get("Referrer-Policy") == "no-referrer", path


async def test_signing_in_again_ends_the_former_session(secure_server: ShoalServer) -> None:
    base = secure_server.http_url
    assert secure_server.accounts is not None
    form = {"account": "default", "key": secure_server.accounts.get("default").primary}
    async with _client(secure_server) as http:
        async with http.post(base + "/login", data=form, allow_redirects=False) as r:
            first = r.cookies["shoal_session"].value
        async with http.post(base + "/login", data=form, allow_redirects=False) as r:
            assert r.cookies["shoal_session"].value != first
    async with _client(secure_server) as other, other.get(base + "/api/whoami", cookies={"shoal_session": first}) as r:
        assert r.status == 401


def _operator_certificate() -> tuple[bytes, bytes, bytes]:
    """A CA of the operator's and a certificate it issued for a name only (no address), as an operator's
    own certificate usually is: ``(ca_pem, chain_pem, key_pem)``."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("operator CA"))
        .issuer_name(name("operator CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("batch.example"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("batch.example")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


async def test_the_dashboard_reads_through_an_operators_own_certificate(tmp_path: Path) -> None:
    ca_pem, chain_pem, key_pem = _operator_certificate()
    (tmp_path / "cert.pem").write_bytes(chain_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    srv = ShoalServer(
        ServerConfig(
            data_dir=tmp_path / "data",
            listen="127.0.0.1:0",
            publish_address=False,
            tls_cert=tmp_path / "cert.pem",
            tls_key=tmp_path / "key.pem",
        )
    )
    await srv.start()
    try:
        assert srv.accounts is not None
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
        ctx.check_hostname = False  # (the test reaches batch.example at 127.0.0.1)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), cookie_jar=jar) as http:
            form = {"account": "default", "key": srv.accounts.get("default").primary}
            async with http.post(srv.http_url + "/login", data=form, allow_redirects=False) as r:
                assert r.status == 302
            # The dashboard's own calls to the API check the certificate the API serves.
            async with http.get(srv.http_url + "/api/pools") as r:
                assert r.status == 200, await r.text()
    finally:
        await srv.stop()


async def test_a_tasks_credential_opens_no_dashboard(secure_server: ShoalServer) -> None:
    """A task's credential acts for its node's account in the API; the sign-in form takes account keys only."""
    from shoal.v1 import pool_pb2

    await secure_server.cp.create_pool(pool_pb2.Pool(id="p", target_nodes=1, account="default"), request_id="")
    assert secure_server.accounts is not None and secure_server.provider is not None
    try:
        pool = secure_server.cp.pools["p"]
        node_id = next(iter(pool.nodes))
        credential = secure_server.accounts.task_credential("default", "p", node_id)
        # (The credential is good: the API takes it.)
        assert secure_server.accounts.authenticate("default", credential, lambda *_: True).account == "default"
        base = secure_server.http_url
        async with _client(secure_server) as http:
            form = {"account": "default", "key": credential, "next": "/"}
            async with http.post(base + "/login", data=form, allow_redirects=False) as r:
                assert r.status == 401
            assert not http.cookie_jar.filter_cookies(base)
    finally:
        await secure_server.provider.stop_all()
