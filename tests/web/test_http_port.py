"""The server's HTTP port on a real in-process server: liveness, sign-in and its refusals, the metrics'
credential, TLS with the public API's certificate."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from shoal.server.app import ServerConfig, ShoalServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def secure_server(tmp_path: Path) -> AsyncIterator[ShoalServer]:
    srv = ShoalServer(ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


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
