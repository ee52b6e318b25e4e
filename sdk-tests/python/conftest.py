"""Fixtures for the msgraph-sdk conformance suite.

One real `presenced` process serves the whole session (emulator mode, manual
clock). Tests talk to it through the official `msgraph-sdk` GraphServiceClient
for Graph paths, and through plain HTTP (urllib) for the emulator endpoints
under /_presenced/, which are not Graph. One webhook receiver (stdlib
http.server on 127.0.0.1) serves the session's subscription tests.
`Presenced(..., tls=True)` serves https with presenced's self-signed
certificate (--tls-self-signed); test_tls_sdk.py starts its own.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import re
import secrets
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional

import pytest
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient

REPO = Path(__file__).resolve().parents[2]
TENANT = "5b8e2f61-3c4d-4e7a-9f10-2a6b7c8d9e01"
APP_ID = "0d6f4a2b-7e91-4c3a-8b5d-6e2f1a9c7b44"
START_TIME = "2026-01-01T09:00:00Z"
DELEGATED_SCOPES = "Presence.ReadWrite Presence.Read.All"
APP_ROLES = "Presence.ReadWrite.All Presence.Read.All Presenced.Admin"
LISTEN_LINE = re.compile(r"^presenced listening on (https?://127\.0\.0\.1:(\d+))$")
CERT_LINE = re.compile(r"^presenced TLS certificate \(self-signed\): (.+)$")
STARTUP_TIMEOUT_S = 30.0


class StaticTokenProvider(AccessTokenProvider):
    """Hands the SDK a pre-minted token, only for 127.0.0.1.

    The SDK's own Azure identity provider would try to reach Entra ID; a test
    server needs a provider that returns the token it minted itself.
    """

    def __init__(self, token: str) -> None:
        self._token = token
        self._hosts = AllowedHostsValidator(["127.0.0.1"])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: Optional[dict[str, Any]] = None
    ) -> str:
        return self._token if self._hosts.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


async def aclose_http_client(client: Any) -> None:
    """Close an SDK-made httpx.AsyncClient and the connections under it.

    GraphClientFactory swaps the client's transport for msgraph-core's
    AsyncGraphTransport, which (msgraph-core 1.5.2) has no aclose(): the
    client's aclose() then leaves the real transport's connection pool open.
    An idle HTTP/1.1 keep-alive connection costs nothing at server shutdown,
    but an HTTP/2 one that nobody reads holds a graceful shutdown until its
    grace period ends, so the wrapped transport is closed here as well.
    """
    await client.aclose()
    for transport in [client._transport, *client._mounts.values()]:
        inner = getattr(transport, "transport", None)
        if inner is not None:
            await inner.aclose()


class Presenced:
    """A running presenced process plus helpers to mint tokens and drive the emulator."""

    def __init__(self, binary: Path, workdir: Path, tls: bool = False,
                 extra_args: Optional[list[str]] = None) -> None:
        self.binary = binary
        self.tls = tls
        self.extra_args = list(extra_args or [])
        # With tls: the certificate from presenced's second stdout line, and
        # an SSL context trusting it (for the plain-HTTP emulator calls).
        self.certificate: Optional[Path] = None
        self.ssl_context: Optional[ssl.SSLContext] = None
        self.workdir = workdir
        self.secret_file = workdir / "jwt-secret"
        self.secret_file.write_text(secrets.token_urlsafe(48))
        self.data_dir = workdir / "data"
        self.data_dir.mkdir()
        self.stderr_path = workdir / "presenced.stderr.log"
        self.proc: Optional[subprocess.Popen[str]] = None
        self.root_url = ""
        self.port = 0
        self._tokens: dict[tuple[Any, ...], str] = {}

    # -- process -----------------------------------------------------------------
    def start(self) -> None:
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [
                str(self.binary), "serve",
                "--listen", "127.0.0.1:0",
                "--data-dir", str(self.data_dir),
                "--jwt-secret-file", str(self.secret_file),
                "--manual-clock",
                "--start-time", START_TIME,
                *(["--tls-self-signed"] if self.tls else []),
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        lines: "queue.Queue[str]" = queue.Queue()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S

        def next_line(what: str) -> str:
            try:
                return lines.get(timeout=max(0.0, deadline - time.monotonic())).rstrip("\r\n")
            except queue.Empty:
                self.stop(check=False)
                raise RuntimeError(
                    f"presenced printed no {what} within {STARTUP_TIMEOUT_S}s\n{self.stderr_tail()}"
                ) from None

        first = next_line("listening line")
        m = LISTEN_LINE.match(first)
        if not m or m.group(1).startswith("https:") != self.tls:
            self.stop(check=False)
            raise RuntimeError(
                f"unexpected first stdout line from presenced: {first!r}\n{self.stderr_tail()}"
            )
        self.root_url, self.port = m.group(1), int(m.group(2))
        if self.tls:
            second = next_line("certificate line")
            c = CERT_LINE.match(second)
            if not c:
                self.stop(check=False)
                raise RuntimeError(
                    f"unexpected second stdout line from presenced: {second!r}\n{self.stderr_tail()}"
                )
            self.certificate = Path(c.group(1))
            self.ssl_context = ssl.create_default_context(cafile=str(self.certificate))

    def stop(self, check: bool = True) -> Optional[str]:
        """SIGTERM and wait; returns a problem description if the stop was not graceful."""
        problem = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=15)
                if code != 0:
                    problem = f"presenced exited with {code} after SIGTERM"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problem = "presenced did not exit within 15s of SIGTERM"
        elif self.proc is not None and check:
            problem = f"presenced had already exited with {self.proc.returncode}"
        with contextlib.suppress(Exception):
            self._stderr.close()
        return problem

    def stderr_tail(self, n: int = 40) -> str:
        try:
            tail = self.stderr_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return "(no stderr log)"
        return "presenced stderr (tail):\n" + "\n".join(tail)

    # -- tokens ------------------------------------------------------------------
    def token(
        self,
        *,
        user: Optional[str] = None,
        scopes: Optional[str] = None,
        roles: Optional[str] = None,
        app: str = APP_ID,
        tenant: str = TENANT,
    ) -> str:
        key = (user, scopes, roles, app, tenant)
        if key not in self._tokens:
            cmd = [str(self.binary), "token", "--jwt-secret-file", str(self.secret_file),
                   "--tenant", tenant, "--app", app]
            if user is not None:
                cmd += ["--user", user]
            if scopes is not None:
                cmd += ["--scopes", scopes]
            if roles is not None:
                cmd += ["--roles", roles]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
            tok = out.stdout.strip()
            assert tok.count(".") == 2, f"`presenced token` did not print a JWT: {out.stdout!r}"
            self._tokens[key] = tok
        return self._tokens[key]

    def delegated(self, user: str, scopes: str = DELEGATED_SCOPES, app: str = APP_ID) -> str:
        return self.token(user=user, scopes=scopes, app=app)

    def application(self, roles: str = APP_ROLES, app: str = APP_ID) -> str:
        return self.token(roles=roles, app=app)

    # -- emulator (plain HTTP, not Graph) ------------------------------------------
    def admin(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.root_url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.application())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(
                f"{method} {path} {body!r} -> {e.code}: {e.read().decode(errors='replace')}"
            ) from None
        return json.loads(raw) if raw.strip() else None

    def public_get(self, path: str) -> Any:
        """GET a public (unauthenticated) endpoint, e.g. the JWKS, as JSON."""
        with urllib.request.urlopen(self.root_url + path, timeout=10, context=self.ssl_context) as resp:
            return json.loads(resp.read())

    def clock_now(self) -> str:
        return self.admin("GET", "/_presenced/clock")["now"]

    def advance(self, duration: str) -> str:
        return self.admin("POST", "/_presenced/clock", {"advance": duration})["now"]

    def put_client_session(self, user: str, name: str, availability: str, activity: str,
                           expiration: Optional[str] = None) -> None:
        body: dict[str, Any] = {"availability": availability, "activity": activity}
        if expiration is not None:
            body["expirationDuration"] = expiration
        self.admin("PUT", f"/_presenced/users/{user}/clientSessions/{name}", body)

    def delete_client_session(self, user: str, name: str) -> None:
        self.admin("DELETE", f"/_presenced/users/{user}/clientSessions/{name}")

    # -- SDK clients ---------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def graph(self, token: str, version: str = "v1.0") -> AsyncIterator[GraphServiceClient]:
        """A GraphServiceClient aimed at this server, closed on exit.

        GraphRequestAdapter keeps the SDK's default middleware and its options
        (the UrlReplaceHandler rewrites /users/me-token-to-replace to /me);
        only the base URL changes.
        """
        adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token)))
        adapter.base_url = f"{self.root_url}/{version}"
        try:
            yield GraphServiceClient(request_adapter=adapter)
        finally:
            await aclose_http_client(adapter._http_client)


# ----------------------------------------------------------------------------- webhooks


@dataclass
class Received:
    """One POST that reached the receiver."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


# How the receiver answers, chosen by the first path segment of the URL.
ECHO = "hooks"             # validation: 200 text/plain with the token; notifications: 202
WRONG_ECHO = "wrong-echo"  # validation: 200 with some other text
REFUSE = "refuse"          # validation: 403


class WebhookReceiver:
    """A real notification endpoint on 127.0.0.1 (stdlib http.server, own thread).

    Answers Graph's validation handshake (SPEC §7: `POST ?validationToken=…`,
    200 text/plain with the decoded token as the whole body) and records
    every notification POST. Each test uses its own path, so tests never see
    each other's traffic.
    """

    def __init__(self) -> None:
        self.validations: list[Received] = []
        self.notifications: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(
                    path=url.path,
                    query=urllib.parse.parse_qs(url.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                mode = url.path.strip("/").split("/", 1)[0]
                if "validationToken" in got.query:
                    token = got.query["validationToken"][0]
                    receiver._record(receiver.validations, got)
                    if mode == REFUSE:
                        self._answer(403, b"")
                    elif mode == WRONG_ECHO:
                        self._answer(200, b"not the token", "text/plain")
                    else:
                        self._answer(200, token.encode(), "text/plain")
                    return
                receiver._record(receiver.notifications, got)
                self._answer(202, b"")

            def _answer(self, status: int, body: bytes, content_type: Optional[str] = None) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, into: list[Received], got: Received) -> None:
        with self._cond:
            into.append(got)
            self._cond.notify_all()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def endpoint(self, mode: str = ECHO, query: str = "") -> str:
        """A fresh notification URL on this receiver; `query` is kept as given."""
        url = f"{self.base_url}/{mode}/{uuid.uuid4()}"
        return f"{url}?{query}" if query else url

    @staticmethod
    def path_of(url: str) -> str:
        return urllib.parse.urlsplit(url).path

    def validations_for(self, url: str) -> list[Received]:
        path = self.path_of(url)
        with self._cond:
            return [r for r in self.validations if r.path == path]

    def notifications_for(self, url: str) -> list[Received]:
        path = self.path_of(url)
        with self._cond:
            return [r for r in self.notifications if r.path == path]

    def wait_for_item(
        self,
        url: str,
        match: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 10.0,
        describe: Optional[Callable[[dict[str, Any]], Any]] = None,
    ) -> tuple[Received, dict[str, Any]]:
        """The first notification item POSTed to `url` that `match`es, waiting
        up to `timeout` seconds; fails naming `what` and listing what came
        (each item through `describe`, e.g. decrypted, when given)."""
        path = self.path_of(url)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.notifications:
                    if r.path != path:
                        continue
                    try:
                        items = r.json().get("value") or []
                    except ValueError:
                        continue
                    for item in items:
                        if match(item):
                            return r, item
                left = deadline - time.monotonic()
                if left <= 0:
                    posts = [r for r in self.notifications if r.path == path]
                    seen: list[Any] = []
                    for r in posts:
                        try:
                            seen += [describe(i) if describe else i for i in r.json().get("value") or []]
                        except Exception as e:  # noqa: BLE001 (report, do not mask the timeout)
                            seen.append(f"{r.body[:500]!r} ({e})")
                    raise AssertionError(
                        f"no notification {what} reached {path} within {timeout}s; "
                        f"{len(posts)} POST(s) arrived there, items: {seen}"
                    )
                self._cond.wait(left)


def _binary() -> Path:
    raw = os.environ.get("PRESENCED_BIN")
    path = Path(raw) if raw else REPO / "target" / "debug" / "presenced"
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    return path


@pytest.fixture(scope="session")
def server() -> Any:
    binary = _binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.exit(f"presenced binary not found or not executable: {binary} "
                    "(build it with `cargo build --bin presenced` or set PRESENCED_BIN)", returncode=2)
    with tempfile.TemporaryDirectory(prefix="presenced-sdk-py-") as tmp:
        srv = Presenced(binary, Path(tmp))
        srv.start()
        try:
            yield srv
        finally:
            problem = srv.stop()
            if problem:
                pytest.fail(f"{problem}\n{srv.stderr_tail()}", pytrace=False)


@pytest.fixture(scope="session")
def receiver() -> Any:
    """The session's webhook receiver on 127.0.0.1 (tests use their own paths)."""
    r = WebhookReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def user() -> str:
    """A fresh user GUID per test, so tests never share presence state."""
    return str(uuid.uuid4())


@pytest.fixture(autouse=True)
def _stderr_on_failure(request: pytest.FixtureRequest) -> Any:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        print(srv.stderr_tail(20))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
