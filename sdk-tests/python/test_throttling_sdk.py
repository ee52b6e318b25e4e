"""Graph's throttling (presenced --rate-limit) through msgraph-sdk: the SDK's
default RetryHandler honours Retry-After on a 429 and the call succeeds.

The proof that the SDK retried: immediately before its call, a plain
request (no retry) with the same token is refused with 429 TooManyRequests,
and nothing refills the bucket until the Retry-After the server gave has
passed; the SDK call still returns the presence.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from conftest import Presenced, _binary


def plain_get(srv: Presenced, token: str) -> tuple[int, Any, dict]:
    """One GET /me/presence without retries: status, headers (case-insensitive), JSON."""
    req = urllib.request.Request(
        f"{srv.root_url}/v1.0/me/presence", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"{}")


def test_the_sdk_retries_a_429_after_retry_after_and_succeeds() -> None:
    async def body() -> None:
        with tempfile.TemporaryDirectory(prefix="presenced-sdk-py-throttle-") as tmp:
            srv = Presenced(_binary(), Path(tmp), extra_args=["--rate-limit", "2/2s"])
            srv.start()
            try:
                user = str(uuid.uuid4())
                token = srv.delegated(user)
                statuses = [plain_get(srv, token)[0] for _ in range(3)]
                assert statuses[:2] == [200, 200], statuses
                assert statuses[2] == 429, statuses
                status, headers, error = plain_get(srv, token)
                assert status == 429
                assert error["error"]["code"] == "TooManyRequests", error
                assert int(headers.get("Retry-After", "0")) >= 1, dict(headers)
                async with srv.graph(token) as client:
                    presence = await client.me.presence.get()
                assert presence is not None and presence.id == user
                assert presence.availability == "Offline"
            finally:
                problem = srv.stop()
                assert problem is None, f"{problem}\n{srv.stderr_tail()}"

    asyncio.run(asyncio.wait_for(body(), 60))
