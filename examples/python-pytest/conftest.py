"""Fixtures for testing a Graph presence integration against presenced.

Run the suite against a throwaway emulator with:

    presenced exec -- python -m pytest

`presenced exec` starts an in-memory emulator (manual clock) on a free
loopback port and gives this process PRESENCED_URL, PRESENCED_TENANT,
PRESENCED_ADMIN_TOKEN (for the /_presenced endpoints) and
PRESENCED_JWT_SECRET_FILE (to mint the tokens your app would get from
Entra ID). Every test starts from an empty emulator (POST /_presenced/reset).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import os
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import pytest
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient

APP_ID = "7d3a4c1e-58b2-4f6a-9e0d-1c2b3a4d5e6f"  # your app's client id


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run this suite with `presenced exec -- python -m pytest`", 2)
    return value


URL = _env("PRESENCED_URL")
TENANT = _env("PRESENCED_TENANT")
ADMIN = _env("PRESENCED_ADMIN_TOKEN")
SECRET = Path(_env("PRESENCED_JWT_SECRET_FILE")).read_text().strip().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(**claims: Any) -> str:
    """An HS256 token shaped like Entra ID's, signed with the emulator's secret."""
    now = int(time.time())
    body = {"tid": TENANT, "appid": APP_ID, "aud": "https://graph.microsoft.com",
            "iss": f"https://sts.windows.net/{TENANT}/", "iat": now, "nbf": now, "exp": now + 3600,
            **claims}
    unsigned = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(body).encode())}"
    signature = hmac.new(SECRET, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{_b64(signature)}"


def app_token() -> str:
    return mint_token(roles=["Presence.ReadWrite.All", "Presence.Read.All"])


def user_token(user: str) -> str:
    return mint_token(oid=user, scp="Presence.ReadWrite Presence.Read.All")


def emulator(method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
    """The emulator's own endpoints (not Graph), with the admin token."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(URL + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read()
    return json.loads(text) if text else None


class StaticTokenProvider(AccessTokenProvider):
    """Hands the SDK a token minted above (a real app gets one from Entra ID)."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._hosts = AllowedHostsValidator(["127.0.0.1"])

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


@contextlib.asynccontextmanager
async def graph(token: str) -> AsyncIterator[GraphServiceClient]:
    """The official GraphServiceClient with its default middleware (retries
    included), aimed at the emulator: only the base URL changes."""
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token)))
    adapter.base_url = f"{URL}/v1.0"
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        client = adapter._http_client
        await client.aclose()
        # msgraph-core's transport wrapper does not close the pool under it.
        for transport in [client._transport, *client._mounts.values()]:
            inner = getattr(transport, "transport", None)
            if inner is not None:
                await inner.aclose()


@pytest.fixture(autouse=True)
def reset_emulator() -> None:
    """Every test starts from an empty emulator: no presence, subscriptions,
    fault rules or journaled requests."""
    emulator("POST", "/_presenced/reset")


class WebhookReceiver:
    """A notification endpoint on 127.0.0.1 that answers Graph's validation
    handshake and keeps every notification it gets."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "validationToken" in query:
                    answer = query["validationToken"][0].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                with receiver._arrived:
                    receiver.notifications.append(json.loads(body))
                    receiver._arrived.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/presence"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.notifications) >= count, timeout):
                raise AssertionError(f"{count} notification(s) expected within {timeout} s; got {self.notifications}")
            return list(self.notifications)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook_receiver() -> Any:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
