"""presenced driven through the official Microsoft Graph Python SDK (msgraph-sdk).

Every Graph call below goes through GraphServiceClient request builders exactly
as an application would write them against graph.microsoft.com; only the base
URL and the token provider differ. SPEC section numbers refer to
shared/SPEC.md.
"""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import pytest
from msgraph.generated.communications.get_presences_by_user_id.get_presences_by_user_id_post_request_body import (
    GetPresencesByUserIdPostRequestBody,
)
from msgraph.generated.communications.presences.item.clear_presence.clear_presence_post_request_body import (
    ClearPresencePostRequestBody as CommClearPresenceBody,
)
from msgraph.generated.communications.presences.item.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody as CommSetPresenceBody,
)
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.presence import Presence
from msgraph.generated.models.presence_status_message import PresenceStatusMessage
from msgraph.generated.models.work_location_source import WorkLocationSource
from msgraph.generated.models.work_location_type import WorkLocationType
from msgraph.generated.users.item.presence.clear_presence.clear_presence_post_request_body import (
    ClearPresencePostRequestBody,
)
from msgraph.generated.users.item.presence.set_automatic_location.set_automatic_location_post_request_body import (
    SetAutomaticLocationPostRequestBody,
)
from msgraph.generated.users.item.presence.set_manual_location.set_manual_location_post_request_body import (
    SetManualLocationPostRequestBody,
)
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)
from msgraph.generated.users.item.presence.set_status_message.set_status_message_post_request_body import (
    SetStatusMessagePostRequestBody,
)
from msgraph.generated.users.item.presence.set_user_preferred_presence.set_user_preferred_presence_post_request_body import (
    SetUserPreferredPresencePostRequestBody,
)

from conftest import APP_ID, Presenced


def aio(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def pair(p: Presence) -> tuple[str | None, str | None]:
    return (p.availability, p.activity)


def set_presence_body(availability: str, activity: str, duration: str | None = "PT1H",
                      session_id: str = APP_ID) -> SetPresencePostRequestBody:
    # expirationDuration is typed datetime.timedelta, but the SDK serialises a
    # timedelta as str(td) ("1:00:00"), which Graph (and presenced, SPEC §4)
    # rejects. The SDK's writer also accepts an ISO 8601 string, which it
    # sends unchanged: that is how an application must call it.
    return SetPresencePostRequestBody(
        session_id=session_id, availability=availability, activity=activity,
        expiration_duration=duration,  # type: ignore[arg-type]
    )


async def expect_odata_error(awaitable: Awaitable[Any]) -> ODataError:
    with pytest.raises(ODataError) as info:
        await awaitable
    return info.value


def seven_digits(dt: str) -> str:
    """Normalise a Graph dateTime (no offset) to 7 fractional digits for comparison."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?", dt)
    assert m, f"not a Graph dateTime without offset: {dt!r}"
    return f"{m.group(1)}.{(m.group(2) or '').ljust(7, '0')}"


def parse_now(now: str) -> datetime:
    return datetime.fromisoformat(now.replace("Z", "+00:00")).astimezone(timezone.utc)


# --------------------------------------------------------------------------- get


@aio
async def test_me_presence_of_a_user_never_seen_is_offline(server: Presenced, user: str) -> None:
    async with server.graph(server.delegated(user)) as graph:
        p = await graph.me.presence.get()

    assert p is not None
    assert p.id == user
    assert pair(p) == ("Offline", "Offline")
    assert p.status_message is None
    assert p.sequence_number, "sequenceNumber must be present"
    assert p.out_of_office_settings is not None
    assert p.out_of_office_settings.is_out_of_office is False
    assert p.work_location is not None
    assert p.work_location.work_location_type == WorkLocationType.Unspecified
    assert p.work_location.source == WorkLocationSource.None_
    assert "@odata.context" in p.additional_data


@aio
async def test_users_and_communications_paths_read_what_an_application_set(
    server: Presenced, user: str
) -> None:
    reader = str(uuid.uuid4())
    async with server.graph(server.application()) as app:
        await app.users.by_user_id(user).presence.set_presence.post(set_presence_body("Busy", "InACall"))

    async with server.graph(server.delegated(reader)) as graph:
        via_users = await graph.users.by_user_id(user).presence.get()
        via_comms = await graph.communications.presences.by_presence_id(user).get()

    for p in (via_users, via_comms):
        assert p is not None
        assert p.id == user
        assert pair(p) == ("Busy", "InACall")
    ctx = via_users.additional_data.get("@odata.context", "")
    assert ctx.endswith(f"$metadata#users('{user}')/presence/$entity"), ctx
    assert "@odata.context" in via_comms.additional_data


@aio
async def test_beta_base_url_serves_the_same_presence(server: Presenced, user: str) -> None:
    async with server.graph(server.application()) as app:
        await app.users.by_user_id(user).presence.set_presence.post(
            set_presence_body("DoNotDisturb", "Presenting"))
    async with server.graph(server.application(), version="beta") as beta:
        p = await beta.users.by_user_id(user).presence.get()
    assert p is not None and pair(p) == ("DoNotDisturb", "Presenting")


@aio
async def test_get_presences_by_user_id_keeps_the_order_of_ids(server: Presenced) -> None:
    busy, away, never = (str(uuid.uuid4()) for _ in range(3))
    async with server.graph(server.application()) as app:
        await app.users.by_user_id(busy).presence.set_presence.post(set_presence_body("Busy", "InAConferenceCall"))
        await app.users.by_user_id(away).presence.set_presence.post(set_presence_body("Away", "Away"))

    ids = [never, away, busy]
    async with server.graph(server.delegated(str(uuid.uuid4()))) as graph:
        res = await graph.communications.get_presences_by_user_id.post(
            GetPresencesByUserIdPostRequestBody(ids=ids))

    assert res is not None and res.value is not None
    assert [p.id for p in res.value] == ids
    assert [pair(p) for p in res.value] == [
        ("Offline", "Offline"), ("Away", "Away"), ("Busy", "InAConferenceCall")]


# --------------------------------------------------------------- setPresence / clearPresence


@aio
async def test_set_then_clear_presence_on_me(server: Presenced, user: str) -> None:
    async with server.graph(server.delegated(user)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("Available", "Available"))
        after_set = await graph.me.presence.get()
        await graph.me.presence.clear_presence.post(ClearPresencePostRequestBody(session_id=APP_ID))
        after_clear = await graph.me.presence.get()

    assert after_set is not None and pair(after_set) == ("Available", "Available")
    assert after_clear is not None and pair(after_clear) == ("Offline", "Offline")
    assert after_clear.sequence_number != after_set.sequence_number


@aio
async def test_set_and_clear_presence_through_communications_presences(server: Presenced, user: str) -> None:
    async with server.graph(server.application()) as app:
        item = app.communications.presences.by_presence_id(user)
        await item.set_presence.post(CommSetPresenceBody(
            session_id=APP_ID, availability="Busy", activity="InACall",
            expiration_duration="PT10M"))  # type: ignore[arg-type]
        after_set = await item.get()
        await item.clear_presence.post(CommClearPresenceBody(session_id=APP_ID))
        after_clear = await item.get()

    assert after_set is not None and pair(after_set) == ("Busy", "InACall")
    assert after_clear is not None and pair(after_clear) == ("Offline", "Offline")


@aio
async def test_clear_presence_of_an_unknown_session_is_item_not_found(server: Presenced, user: str) -> None:
    async with server.graph(server.application()) as app:
        err = await expect_odata_error(
            app.users.by_user_id(user).presence.clear_presence.post(ClearPresencePostRequestBody(session_id=APP_ID)))
    assert err.response_status_code == 404
    assert err.error is not None and err.error.code == "itemNotFound"


# ------------------------------------------------------------------------- preferred presence


@aio
async def test_preferred_presence_overrides_sessions_until_cleared(server: Presenced, user: str) -> None:
    async with server.graph(server.delegated(user)) as graph:
        presence = graph.me.presence
        await presence.set_presence.post(set_presence_body("Available", "Available"))
        await presence.set_user_preferred_presence.post(
            SetUserPreferredPresencePostRequestBody(availability="DoNotDisturb", activity="DoNotDisturb"))
        dnd = await presence.get()
        await presence.set_user_preferred_presence.post(SetUserPreferredPresencePostRequestBody(
            availability="Offline", activity="OffWork", expiration_duration="PT8H"))  # type: ignore[arg-type]
        off_work = await presence.get()
        # The SDK sends clearUserPreferredPresence with no body and no Content-Type.
        await presence.clear_user_preferred_presence.post()
        cleared = await presence.get()

    assert dnd is not None and pair(dnd) == ("DoNotDisturb", "DoNotDisturb")
    assert off_work is not None and pair(off_work) == ("Offline", "OffWork")
    assert cleared is not None and pair(cleared) == ("Available", "Available")


@aio
async def test_preferred_presence_without_a_live_session_reads_offline(server: Presenced, user: str) -> None:
    async with server.graph(server.application()) as app:
        presence = app.users.by_user_id(user).presence
        await presence.set_user_preferred_presence.post(
            SetUserPreferredPresencePostRequestBody(availability="Busy", activity="Busy"))
        p = await presence.get()
    assert p is not None and pair(p) == ("Offline", "Offline")


# ---------------------------------------------------------------------------- status message


@aio
async def test_status_message_without_expiry_reads_back_9999_utc_for_its_owner(
    server: Presenced, user: str
) -> None:
    body = SetStatusMessagePostRequestBody(status_message=PresenceStatusMessage(
        message=ItemBody(content="Heads down until lunch", content_type=BodyType.Text)))
    async with server.graph(server.delegated(user)) as graph:
        await graph.me.presence.set_status_message.post(body)
        mine = await graph.me.presence.get()
    async with server.graph(server.delegated(str(uuid.uuid4()))) as other:
        theirs = await other.users.by_user_id(user).presence.get()

    assert mine is not None and mine.status_message is not None
    sm = mine.status_message
    assert sm.message is not None
    assert sm.message.content == "Heads down until lunch"
    assert sm.message.content_type == BodyType.Text
    assert sm.expiry_date_time is not None
    assert seven_digits(sm.expiry_date_time.date_time or "") == "9999-12-31T23:59:59.9999999"
    assert sm.expiry_date_time.time_zone == "UTC"
    assert sm.published_date_time is not None
    # publishedDateTime is the server time of the call: the emulator clock, which has not moved since.
    assert sm.published_date_time.astimezone(timezone.utc) == parse_now(server.clock_now())

    # SPEC §2: a reader who is not the subject sees the message without its instants.
    assert theirs is not None and theirs.status_message is not None
    assert theirs.status_message.message is not None
    assert theirs.status_message.message.content == "Heads down until lunch"
    assert theirs.status_message.expiry_date_time is None
    assert theirs.status_message.published_date_time is None


@aio
async def test_status_message_with_expiry_echoes_the_time_zone_and_expires_on_the_clock(
    server: Presenced, user: str
) -> None:
    now = parse_now(server.clock_now())
    assert now.month == 1, "the emulator clock is expected in January (PST = UTC-8)"
    expiry_utc = now + timedelta(hours=2)
    expiry_pst = (expiry_utc - timedelta(hours=8)).replace(tzinfo=None)
    sent = expiry_pst.strftime("%Y-%m-%dT%H:%M:%S") + ".1234567"

    body = SetStatusMessagePostRequestBody(status_message=PresenceStatusMessage(
        message=ItemBody(content="Back at 11", content_type=BodyType.Text),
        expiry_date_time=DateTimeTimeZone(date_time=sent, time_zone="Pacific Standard Time")))
    async with server.graph(server.delegated(user)) as graph:
        await graph.me.presence.set_status_message.post(body)
        before = await graph.me.presence.get()
        server.advance("PT1H")
        still = await graph.me.presence.get()
        server.advance("PT1H1M")
        after = await graph.me.presence.get()

    assert before is not None and before.status_message is not None
    exp = before.status_message.expiry_date_time
    assert exp is not None
    assert exp.time_zone == "Pacific Standard Time"
    assert seven_digits(exp.date_time or "") == sent
    assert still is not None and still.status_message is not None
    assert after is not None and after.status_message is None


@aio
async def test_status_message_with_unknown_time_zone_is_invalid_request(server: Presenced, user: str) -> None:
    body = SetStatusMessagePostRequestBody(status_message=PresenceStatusMessage(
        message=ItemBody(content="x", content_type=BodyType.Text),
        expiry_date_time=DateTimeTimeZone(date_time="2026-01-02T10:00:00", time_zone="Mars Standard Time")))
    async with server.graph(server.delegated(user)) as graph:
        err = await expect_odata_error(graph.me.presence.set_status_message.post(body))
    assert err.response_status_code == 400
    assert err.error is not None and err.error.code == "invalidRequest"


# ------------------------------------------------------------------------------ work location


@aio
async def test_work_location_actions(server: Presenced, user: str) -> None:
    async with server.graph(server.delegated(user)) as graph:
        presence = graph.me.presence

        await presence.set_automatic_location.post(
            SetAutomaticLocationPostRequestBody(work_location_type=WorkLocationType.Remote))
        automatic = await presence.get()
        # clearAutomaticLocation / clearLocation: the SDK posts no body at all.
        await presence.clear_automatic_location.post()
        after_clear_automatic = await presence.get()

        await presence.set_manual_location.post(SetManualLocationPostRequestBody(
            work_location_type=WorkLocationType.Office, place_id="building-42"))
        manual = await presence.get()
        await presence.clear_location.post()
        after_clear = await presence.get()

    def wl(p: Presence | None) -> tuple[Any, Any, Any]:
        assert p is not None and p.work_location is not None
        return (p.work_location.work_location_type, p.work_location.source, p.work_location.place_id)

    assert wl(automatic)[:2] == (WorkLocationType.Remote, WorkLocationSource.Automatic)
    assert wl(after_clear_automatic)[:2] == (WorkLocationType.Unspecified, WorkLocationSource.None_)
    assert wl(manual) == (WorkLocationType.Office, WorkLocationSource.Manual, "building-42")
    assert wl(after_clear)[:2] == (WorkLocationType.Unspecified, WorkLocationSource.None_)


@aio
async def test_work_location_with_an_application_token_is_refused(server: Presenced, user: str) -> None:
    async with server.graph(server.application()) as app:
        err = await expect_odata_error(app.users.by_user_id(user).presence.set_manual_location.post(
            SetManualLocationPostRequestBody(work_location_type=WorkLocationType.Office)))
    assert err.response_status_code is not None and 400 <= err.response_status_code < 500
    assert err.error is not None and err.error.code


# ------------------------------------------------------------------------------- error paths


@aio
async def test_invalid_pair_surfaces_as_odata_error_with_code_and_message(server: Presenced, user: str) -> None:
    async with server.graph(server.delegated(user)) as graph:
        err = await expect_odata_error(
            graph.me.presence.set_presence.post(set_presence_body("Available", "Busy")))

    assert err.response_status_code == 400
    assert err.error is not None
    assert err.error.code == "invalidRequest"
    assert err.error.message and "Available" in err.error.message and "Busy" in err.error.message, err.error.message
    assert err.primary_message == err.error.message
    assert err.error.inner_error is not None, "innerError must be present (SPEC §6)"
    assert err.response_headers is not None
    assert err.response_headers.get("content-type", "").startswith("application/json")


@aio
async def test_session_id_other_than_the_calling_app_is_invalid_request(server: Presenced, user: str) -> None:
    async with server.graph(server.delegated(user)) as graph:
        err = await expect_odata_error(graph.me.presence.set_presence.post(
            set_presence_body("Available", "Available", session_id=str(uuid.uuid4()))))
    assert err.response_status_code == 400
    assert err.error is not None and err.error.code == "invalidRequest"
    assert err.error.message and "session" in err.error.message.lower(), err.error.message


@aio
async def test_sdk_timedelta_duration_is_rejected_with_the_expected_form(server: Presenced, user: str) -> None:
    # What the SDK sends when handed a datetime.timedelta, as its type hint asks.
    body = SetPresencePostRequestBody(session_id=APP_ID, availability="Available", activity="Available",
                                      expiration_duration=timedelta(hours=1))
    async with server.graph(server.delegated(user)) as graph:
        err = await expect_odata_error(graph.me.presence.set_presence.post(body))
    assert err.response_status_code == 400
    assert err.error is not None and err.error.code == "invalidRequest"
    assert err.error.message and "PT" in err.error.message, err.error.message


@aio
async def test_delegated_write_on_another_user_is_forbidden(server: Presenced, user: str) -> None:
    other = str(uuid.uuid4())
    async with server.graph(server.delegated(user)) as graph:
        err = await expect_odata_error(
            graph.users.by_user_id(other).presence.set_presence.post(set_presence_body("Available", "Available")))
    assert err.response_status_code == 403
    assert err.error is not None and err.error.code == "Forbidden"


@aio
async def test_me_with_an_application_token_is_invalid_request(server: Presenced) -> None:
    async with server.graph(server.application()) as app:
        err = await expect_odata_error(app.me.presence.get())
    assert err.response_status_code == 400
    assert err.error is not None and err.error.code == "invalidRequest"
    assert err.error.message and "/me request is only valid with delegated authentication flow" in err.error.message


# ------------------------------------------------------------------------ emulator + time


@aio
async def test_available_session_fades_to_inactive_then_away_then_offline(server: Presenced, user: str) -> None:
    seen: list[Presence] = []
    async with server.graph(server.delegated(user)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("Available", "Available", "PT1H"))
        for step in (None, "PT5M", "PT5M", "PT50M"):
            if step:
                server.advance(step)
            p = await graph.me.presence.get()
            assert p is not None
            seen.append(p)

    assert [pair(p) for p in seen] == [
        ("Available", "Available"),
        ("Available", "AvailableInactive"),
        ("Away", "Away"),
        ("Offline", "Offline"),
    ]
    seqs = [p.sequence_number or "" for p in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), \
        f"sequenceNumber must sort higher on every change (SPEC §2): {seqs}"


@aio
async def test_simulated_teams_client_session_aggregates_with_the_app_session(server: Presenced, user: str) -> None:
    async with server.graph(server.application()) as app:
        presence = app.users.by_user_id(user).presence
        await presence.set_presence.post(set_presence_body("Available", "Available"))
        server.put_client_session(user, "desktop", "Busy", "InACall", "PT1H")
        with_client = await presence.get()
        server.delete_client_session(user, "desktop")
        without_client = await presence.get()

    assert with_client is not None and pair(with_client) == ("Busy", "InACall")
    assert without_client is not None and pair(without_client) == ("Available", "Available")
