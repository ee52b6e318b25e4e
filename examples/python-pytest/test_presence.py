"""A Graph presence integration tested against presenced with the official
Python SDK (msgraph-sdk): run with `presenced exec -- python -m pytest`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from msgraph.generated.models.subscription import Subscription
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)

from conftest import APP_ID, app_token, emulator, graph, user_token


def set_presence_body(availability: str, activity: str) -> SetPresencePostRequestBody:
    # expirationDuration as an ISO 8601 string: the SDK would render a
    # timedelta as "1:00:00", which Graph refuses.
    return SetPresencePostRequestBody(
        session_id=APP_ID, availability=availability, activity=activity,
        expiration_duration="PT1H",  # type: ignore[arg-type]
    )


def test_every_test_starts_from_an_empty_emulator() -> None:
    assert emulator("GET", "/_presenced/requests")["value"] == []
    assert emulator("GET", "/_presenced/state")["tenants"] == []


def test_an_available_session_fades_when_the_clock_moves() -> None:
    async def body() -> None:
        user = str(uuid.uuid4())
        async with graph(app_token()) as client:
            await client.users.by_user_id(user).presence.set_presence.post(
                set_presence_body("Available", "Available"))
            emulator("POST", "/_presenced/clock", {"advance": "PT5M"})
            presence = await client.users.by_user_id(user).presence.get()
            assert (presence.availability, presence.activity) == ("Available", "AvailableInactive")
            emulator("POST", "/_presenced/clock", {"advance": "PT5M"})
            presence = await client.users.by_user_id(user).presence.get()
            assert (presence.availability, presence.activity) == ("Away", "Away")

    asyncio.run(body())


def test_the_sdk_retries_an_injected_429_and_succeeds() -> None:
    async def body() -> None:
        user = str(uuid.uuid4())
        async with graph(app_token()) as client:
            await client.users.by_user_id(user).presence.set_presence.post(
                set_presence_body("Busy", "InACall"))
            rule = emulator("POST", "/_presenced/faults", {
                "method": "GET", "path": "/v1.0/users/*/presence",
                "status": 429, "retryAfterSeconds": 1, "count": 1,
            })
            presence = await client.users.by_user_id(user).presence.get()
            assert presence.availability == "Busy"
        # The journal shows the refused request and the SDK's retry after it.
        gets = [r for r in emulator("GET", "/_presenced/requests?limit=10")["value"] if r["method"] == "GET"]
        assert [(r["status"], r["faulted"]) for r in gets] == [(200, False), (429, True)]
        assert gets[1]["faultRuleId"] == rule["id"]

    asyncio.run(body())


def test_the_journal_shows_what_the_app_sent() -> None:
    async def body() -> None:
        user = str(uuid.uuid4())
        async with graph(app_token()) as client:
            await client.users.by_user_id(user).presence.set_presence.post(
                set_presence_body("DoNotDisturb", "Presenting"))
        [last] = emulator("GET", "/_presenced/requests?limit=1")["value"]
        assert last["path"] == f"/v1.0/users/{user}/presence/setPresence"
        assert last["status"] == 200
        assert last["appId"] == APP_ID
        assert last["body"]["availability"] == "DoNotDisturb"
        assert "Bearer" not in str(last), "tokens are never journaled"

    asyncio.run(body())


def test_a_webhook_arrives_when_a_watched_users_presence_changes(webhook_receiver) -> None:
    async def body() -> None:
        user = str(uuid.uuid4())
        # The emulator clock, e.g. 2026-11-27T09:00:00.0000000Z (7 digits).
        clock = emulator("GET", "/_presenced/clock")["now"]
        now = datetime.fromisoformat(clock[:26]).replace(tzinfo=timezone.utc)
        async with graph(user_token(user)) as client:
            subscription = await client.subscriptions.post(Subscription(
                change_type="updated",
                notification_url=webhook_receiver.url,
                resource=f"/communications/presences/{user}",
                expiration_date_time=now + timedelta(minutes=50),
                client_state="secret-state",
            ))
        async with graph(app_token()) as client:
            await client.users.by_user_id(user).presence.set_presence.post(
                set_presence_body("Busy", "InACall"))
        [notification] = webhook_receiver.wait_for(1)
        [item] = notification["value"]
        assert item["subscriptionId"] == subscription.id
        assert item["clientState"] == "secret-state"
        assert item["resourceData"]["id"] == user

    asyncio.run(body())
