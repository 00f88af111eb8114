"""The server's HTTP port (aiohttp on the server's own event loop): ``/metrics``, sign-in, the dashboard.

TLS and plaintext follow the public API's: a secure server serves HTTPS with the public API's certificate,
and every page but the sign-in form needs a session (`sessions`); ``/metrics`` needs the administrator's
key as ``Authorization: Bearer KEY`` (what Prometheus's ``authorization`` setting sends). A plaintext
server, on loopback only, asks for nothing, like its gRPC API.
"""

from __future__ import annotations

import html
import logging
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from aiohttp import web

from shoal.clock import Clock
from shoal.server.domain.errors import Refused

from .sessions import Session, Sessions

log = logging.getLogger(__name__)

COOKIE = "shoal_session"
#: Paths open without a session (the sign-in form, liveness, and the scrape and service discovery endpoints,
#: which check their own: see `targets`).
OPEN_PATHS = frozenset({"/login", "/healthz", "/metrics", "/metrics/targets", "/favicon.ico"})

#: Checks an account and key (or the administrator's, account ``_admin``); raises `Refused` when wrong.
Authenticate = Callable[[str, str], object]
#: The metrics in Prometheus's text format, and its content type.
Exposition = Callable[[], tuple[bytes, str]]

#: Sent with every response: only this server's own script and styles run on its pages (the pages build
#: their DOM from text, never from markup), no other site may frame them (a framed sign-in form could be
#: clicked through), and a page's address (with job and task ids) goes nowhere else.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

#: The request's session (None on a plaintext server).
SESSION_KEY: web.RequestKey[Session | None] = web.RequestKey("shoal_session")


@dataclass
class WebConfig:
    """What the HTTP port needs from its server."""

    clock: Clock
    #: None: a plaintext server, where every caller is the default account (as on its gRPC API).
    authenticate: Authenticate | None
    exposition: Exposition
    #: PEM chain and key for HTTPS (None: plaintext).
    tls: tuple[bytes, bytes] | None = None
    #: Called with the application before it starts, to add the dashboard's routes.
    extend: list[Callable[[web.Application], None]] = field(default_factory=list)


class WebServer:
    """One server's HTTP port."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.sessions = Sessions(config.clock)
        self.app = web.Application(middlewares=[self._require_session])
        self.app.on_response_prepare.append(_add_security_headers)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/login", self._login_form)
        self.app.router.add_post("/login", self._login)
        self.app.router.add_post("/logout", self._logout)
        for extend in config.extend:
            extend(self.app)
        self._runner: web.AppRunner | None = None
        #: Where it listens, as ``host:port``, once started.
        self.address = ""

    @property
    def scheme(self) -> str:
        """``https`` or ``http``."""
        return "https" if self.config.tls is not None else "http"

    async def start(self, listen: str) -> str:
        """Listen on `listen` (``host:port``, port 0 for any); returns the bound ``host:port``."""
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host or None, int(port), ssl_context=self._ssl_context())
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else int(port)
        self.address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
        return self.address

    async def stop(self) -> None:
        """Stop listening and end open responses (watch streams among them)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.config.tls is None:
            return None
        chain, key = self.config.tls
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # `load_cert_chain` reads files only: a private directory for the moment it takes.
        with tempfile.TemporaryDirectory(prefix="shoal-http-") as tmp:
            cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, data in ((cert_path, chain), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert_path, key_path)
        return ctx

    # -- authentication ---------------------------------------------------------------------------------
    def _check(self, account: str, key: str) -> bool:
        if self.config.authenticate is None:
            return True
        try:
            self.config.authenticate(account, key)
        except Refused:
            return False
        return True

    @web.middleware
    async def _require_session(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
            # Another site's form posting to /login would sign the browser in to an account of that
            # site's choosing (and to /logout, out): only this server's own pages may.
            raise web.HTTPForbidden(text="a form of another site cannot sign in or out here\n")
        if request.path in OPEN_PATHS or request.path.startswith("/static/"):
            return await handler(request)
        if self.config.authenticate is None:
            request[SESSION_KEY] = None
            return await handler(request)
        session = self.sessions.get(request.cookies.get(COOKIE, ""))
        if session is None:
            if request.path.startswith("/api/"):
                raise web.HTTPUnauthorized(text="sign in first (POST /login)")
            raise web.HTTPFound("/login?next=" + quote(_safe_next(request.raw_path), safe="/"))
        request[SESSION_KEY] = session
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.config.authenticate is not None:
            header = request.headers.get("Authorization", "")
            key = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
            if not key or not self._check("_admin", key):
                raise web.HTTPUnauthorized(
                    text="the metrics need the administrator's key: 'Authorization: Bearer KEY'\n",
                    headers={"WWW-Authenticate": 'Bearer realm="shoal"'},
                )
        body, content_type = self.config.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _login_form(self, request: web.Request) -> web.Response:
        return _login_page(request.query.get("next", "/"), error="", account=request.query.get("account", "default"))

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        account = str(form.get("account", "")).strip()
        key = str(form.get("key", "")).strip()
        target = _safe_next(str(form.get("next", "/")))
        if self.config.authenticate is None:
            raise web.HTTPFound(target)
        if not account or not key or account == "_admin" or not self._check(account, key):
            log.info("dashboard sign-in refused for account %r", account)
            return _login_page(target, error="That account and key do not match.", account=account, status=401)
        # (A browser signing in again leaves its former session behind: it ends now, not when idle.)
        self.sessions.close(request.cookies.get(COOKIE, ""))
        sid = self.sessions.open(account, key)
        response = web.HTTPFound(target)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", secure=self.config.tls is not None, path="/")
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        self.sessions.close(request.cookies.get(COOKIE, ""))
        response = web.HTTPFound("/login")
        response.del_cookie(COOKIE, path="/")
        raise response


def _same_origin(request: web.Request) -> bool:
    """Whether a browser's request comes from this server's own pages (a client that is no browser sends
    neither header, and forges nothing with a browser's cookie)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    # (Host and port only: a proxy in front may end TLS, so the scheme seen here can differ.)
    return urlsplit(origin).netloc.lower() == request.host.lower()


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path of this server only (no ``//host`` or scheme).

    Whitespace and control characters are refused too: a browser drops tabs and newlines from a URL, so
    ``/<TAB>/host`` would become ``//host``, another site.
    """
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(c.isspace() or not c.isprintable() for c in target)
    ):
        return "/"
    return target


def _login_page(target: str, *, error: str, account: str, status: int = 200) -> web.Response:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shoal: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/shoal.css"></head>
<body class="login"><main><h1>Shoal</h1>
<form method="post" action="/login">
{message}
<label>Account <input name="account" id="account" value="{html.escape(account)}" autocomplete="username"></label>
<label>Key <input name="key" id="key" type="password" autocomplete="current-password"></label>
<input type="hidden" name="next" value="{html.escape(target)}">
<button type="submit" id="sign-in">Sign in</button>
</form>
<p class="hint">The key is the account's (<code>shoal account keys</code>, or <code>key</code> in
<code>$SHOAL_HOME/credentials.json</code>).</p></main></body></html>
"""
    return web.Response(text=body, content_type="text/html", status=status)
