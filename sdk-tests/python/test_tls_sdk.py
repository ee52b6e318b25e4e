"""presenced over TLS (--tls-self-signed) through msgraph-sdk's default HTTP client.

msgraph-sdk builds its HTTP client with `GraphClientFactory.create_with_default_middleware`,
which starts from kiota's `KiotaClientFactory.get_default_client()`:
`httpx.AsyncClient(timeout=..., http2=True)`. Over TLS that client offers h2 by
ALPN, and presenced (ALPN h2, http/1.1) must serve it HTTP/2.

Two ways to make that client trust presenced's self-signed certificate, both
with the SDK's default middleware (UrlReplaceHandler, retry, redirect,
telemetry, ...) untouched:

* the untouched default: `GraphRequestAdapter(auth)` builds the client itself,
  and httpx reads `SSL_CERT_FILE` (set here to the certificate presenced
  printed) when it makes the client's SSL context;
* the SDK's factory given an `httpx.AsyncClient(verify=<SSLContext>, http2=...)`,
  as an application passes its own client.

An httpx response hook records `response.http_version` of every Graph call.
This module starts its own presenced with --tls-self-signed (same emulator
flags as the session server).
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
import tempfile
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as MSGRAPH_DEFAULT_OPTIONS
from msgraph.generated.communications.get_presences_by_user_id.get_presences_by_user_id_post_request_body import (
    GetPresencesByUserIdPostRequestBody,
)
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)
from msgraph_core import GraphClientFactory

from conftest import APP_ID, Presenced, StaticTokenProvider, _binary, aclose_http_client

SELF_SIGNED_CERT = "tls-self-signed.cert.pem"
TEST_DEADLINE_S = 60.0


def aio(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop, bounded by TEST_DEADLINE_S."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_DEADLINE_S))

    return wrapper


@pytest.fixture(scope="module")
def tls_server() -> Any:
    binary = _binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.exit(f"presenced binary not found or not executable: {binary}", returncode=2)
    with tempfile.TemporaryDirectory(prefix="presenced-sdk-py-tls-") as tmp:
        srv = Presenced(binary, Path(tmp), tls=True)
        srv.start()
        try:
            yield srv
        finally:
            problem = srv.stop()
            if problem:
                pytest.fail(f"{problem}\n{srv.stderr_tail()}", pytrace=False)


class HttpVersions:
    """An httpx response hook recording (method, path, http_version) per response."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        self.seen.append((response.request.method, response.request.url.path, response.http_version))

    def attach(self, client: httpx.AsyncClient) -> None:
        hooks = client.event_hooks
        hooks["response"] = [*hooks.get("response", []), self]
        client.event_hooks = hooks

    def versions(self) -> set[str]:
        return {v for _, _, v in self.seen}


def set_presence_body(availability: str, activity: str) -> SetPresencePostRequestBody:
    # An ISO 8601 string: the SDK would write a timedelta as "1:00:00" (see README).
    return SetPresencePostRequestBody(
        session_id=APP_ID, availability=availability, activity=activity,
        expiration_duration="PT1H",  # type: ignore[arg-type]
    )


async def set_and_get(server: Presenced, adapter: GraphRequestAdapter, user: str,
                      availability: str, activity: str) -> None:
    """setPresence on /me, then GET /me/presence and /users/{id}/presence, through `adapter`."""
    client = GraphServiceClient(request_adapter=adapter)
    await client.me.presence.set_presence.post(set_presence_body(availability, activity))
    me = await client.me.presence.get()
    assert me is not None and me.id == user
    assert (me.availability, me.activity) == (availability, activity)
    by_id = await client.users.by_user_id(user).presence.get()
    assert by_id is not None and (by_id.availability, by_id.activity) == (availability, activity)


def adapter_for(server: Presenced, token: str, client: Optional[httpx.AsyncClient] = None) -> GraphRequestAdapter:
    """A GraphRequestAdapter aimed at `server`; with no `client`, the SDK makes its default one."""
    auth = BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token))
    adapter = GraphRequestAdapter(auth) if client is None else GraphRequestAdapter(auth, client=client)
    adapter.base_url = f"{server.root_url}/v1.0"
    return adapter


# ----------------------------------------------------------------------------- the listener


def test_certificate_line_names_the_self_signed_certificate_in_the_data_dir(tls_server: Presenced) -> None:
    assert tls_server.root_url.startswith("https://127.0.0.1:")
    assert tls_server.certificate is not None
    assert tls_server.certificate.resolve() == (tls_server.data_dir / SELF_SIGNED_CERT).resolve()
    cert = x509.load_pem_x509_certificate(tls_server.certificate.read_bytes())
    assert cert.issuer == cert.subject, "self-signed"
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}


@pytest.mark.parametrize("offered, chosen", [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")])
def test_alpn_prefers_h2_and_falls_back_to_http11(tls_server: Presenced, offered: list[str], chosen: str) -> None:
    assert tls_server.ssl_context is not None
    ctx = ssl.create_default_context(cafile=str(tls_server.certificate))
    ctx.set_alpn_protocols(offered)
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == chosen


# ----------------------------------------------------------------------------- the SDK's default client


@aio
async def test_default_sdk_client_speaks_http2_over_tls(
    tls_server: Presenced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GraphRequestAdapter(auth) with no client: the SDK's own default httpx
    client (http2=True), trusting the certificate through SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.certificate))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    user = str(uuid.uuid4())
    me = adapter_for(tls_server, tls_server.delegated(user))
    app = adapter_for(tls_server, tls_server.application())
    versions = HttpVersions()
    versions.attach(me._http_client)
    versions.attach(app._http_client)
    try:
        await set_and_get(tls_server, me, user, "Busy", "InACall")
        got = await GraphServiceClient(request_adapter=app).communications.get_presences_by_user_id.post(
            GetPresencesByUserIdPostRequestBody(ids=[user]))
        assert got is not None and got.value is not None
        assert [(p.id, p.availability) for p in got.value] == [(user, "Busy")]
    finally:
        await aclose_http_client(me._http_client)
        await aclose_http_client(app._http_client)
    assert len(versions.seen) == 4, versions.seen
    assert versions.versions() == {"HTTP/2"}, f"responses not all over HTTP/2: {versions.seen}"


@aio
async def test_default_sdk_client_refuses_the_certificate_it_was_not_told_to_trust(
    tls_server: Presenced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: without SSL_CERT_FILE the default client (certifi's roots) rejects
    presenced's self-signed certificate, so the trust above is real."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    adapter = adapter_for(tls_server, tls_server.delegated(str(uuid.uuid4())))
    try:
        with pytest.raises(Exception) as caught:
            await GraphServiceClient(request_adapter=adapter).me.presence.get()
    finally:
        await aclose_http_client(adapter._http_client)
    chain, e = [], caught.value
    while e is not None:
        chain.append(repr(e))
        e = e.__cause__ or e.__context__
    assert any("CERTIFICATE_VERIFY_FAILED" in c for c in chain), chain


@pytest.mark.parametrize("http2, expected", [(True, "HTTP/2"), (False, "HTTP/1.1")])
@aio
async def test_factory_client_with_an_ssl_context(tls_server: Presenced, http2: bool, expected: str) -> None:
    """GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=ctx, http2=...)),
    with msgraph-sdk's own default middleware options: HTTP/2 when offered,
    HTTP/1.1 when the client offers only that."""
    ctx = ssl.create_default_context(cafile=str(tls_server.certificate))
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ctx, http2=http2, timeout=httpx.Timeout(30.0)),
        options=MSGRAPH_DEFAULT_OPTIONS,
    )
    versions = HttpVersions()
    versions.attach(http)
    user = str(uuid.uuid4())
    try:
        await set_and_get(tls_server, adapter_for(tls_server, tls_server.delegated(user), client=http), user,
                          "DoNotDisturb", "Presenting")
    finally:
        await aclose_http_client(http)
    assert len(versions.seen) == 3, versions.seen
    assert versions.versions() == {expected}, versions.seen


@aio
async def test_sigterm_does_not_wait_for_an_idle_http2_client() -> None:
    """An idle pooled HTTP/2 connection (httpx never reads it) must not hold
    up shutdown: presenced closes connections with nothing in flight at once
    instead of waiting out its 10 s grace period for the client."""
    import signal
    import subprocess
    import time

    with tempfile.TemporaryDirectory(prefix="presenced-sdk-py-tls-stop-") as tmp:
        srv = Presenced(_binary(), Path(tmp), tls=True)
        srv.start()
        assert srv.proc is not None and srv.ssl_context is not None
        async with httpx.AsyncClient(verify=srv.ssl_context, http2=True) as client:
            r = await client.get(f"{srv.root_url}/_presenced/healthz")
            assert r.status_code == 200 and r.http_version == "HTTP/2"
            srv.proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(srv.proc.wait, 5)
            except subprocess.TimeoutExpired:
                srv.stop(check=False)
                pytest.fail(f"presenced still running 5 s after SIGTERM with an idle HTTP/2 client\n{srv.stderr_tail()}")
            assert code == 0, srv.stderr_tail()
        srv.stop(check=False)
