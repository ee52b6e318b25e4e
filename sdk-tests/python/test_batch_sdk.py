"""JSON batching through the Python SDK's batch helper (msgraph_core
BatchRequestContent / BatchRequestItem, sent with GraphServiceClient.batch,
a BatchRequestBuilder). SPEC §3a.

Items are made from the request builders' RequestInformation, as the SDK's
documentation shows: their URL is relative (the base URL is only filled in
when a request is sent), which is what Graph, and presenced, accept.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any, Awaitable, Callable

import pytest
from kiota_abstractions.api_error import APIError
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from conftest import APP_ID, Presenced


def aio(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def set_presence_body(availability: str, activity: str) -> SetPresencePostRequestBody:
    # An ISO 8601 string, as test_presence_sdk.py explains.
    return SetPresencePostRequestBody(
        session_id=APP_ID, availability=availability, activity=activity,
        expiration_duration="PT1H",  # type: ignore[arg-type]
    )


PAIRS = [("Busy", "InACall"), ("DoNotDisturb", "Presenting"), ("Away", "Away"),
         ("Available", "Available"), ("Busy", "InAConferenceCall")]


@aio
async def test_a_batch_of_set_presence_calls_for_several_users(server: Presenced) -> None:
    users = [str(uuid.uuid4()) for _ in PAIRS]
    async with server.graph(server.application()) as graph:
        content = BatchRequestContent()
        for i, (user, (availability, activity)) in enumerate(zip(users, PAIRS)):
            info = graph.users.by_user_id(user).presence.set_presence.to_post_request_information(
                set_presence_body(availability, activity))
            item = BatchRequestItem(info, id=str(i))
            assert item.url == f"/users/{user}/presence/setPresence"
            content.add_request(str(i), item)
        answers = await graph.batch.post(content)

        assert answers.get_response_status_codes() == {str(i): 200 for i in range(len(users))}
        for i in range(len(users)):
            item = answers.get_response_by_id(str(i))
            assert item is not None and item.id == str(i)
            assert item.status == 200
            assert not item.body, "actions answer no body"

        for user, (availability, activity) in zip(users, PAIRS):
            p = await graph.users.by_user_id(user).presence.get()
            assert p is not None
            assert (p.availability, p.activity) == (availability, activity)


@aio
async def test_a_batched_write_for_another_user_is_an_inner_403(server: Presenced, user: str) -> None:
    other = str(uuid.uuid4())
    async with server.graph(server.delegated(user)) as graph:
        content = BatchRequestContent()
        for request_id, target in (("mine", user), ("theirs", other)):
            info = graph.users.by_user_id(target).presence.set_presence.to_post_request_information(
                set_presence_body("Busy", "InACall"))
            content.add_request(request_id, BatchRequestItem(info, id=request_id))
        answers = await graph.batch.post(content)
        assert answers.get_response_status_codes() == {"mine": 200, "theirs": 403}
        theirs = answers.get_response_by_id("theirs")
        assert theirs.content_type == "application/json"

        mine = await graph.me.presence.get()
        assert (mine.availability, mine.activity) == ("Busy", "InACall")


@aio
async def test_an_absolute_url_in_a_batch_is_refused_as_graph_does(server: Presenced, user: str) -> None:
    async with server.graph(server.delegated(user)) as graph:
        info = graph.me.presence.set_presence.to_post_request_information(
            set_presence_body("Busy", "InACall"))
        item = BatchRequestItem(info, id="1")
        item.url = f"{server.root_url}/v1.0/me/presence/setPresence"
        content = BatchRequestContent()
        content.add_request("1", item)
        with pytest.raises(APIError) as raised:
            await graph.batch.post(content)
        assert raised.value.response_status_code == 400
        presence = await graph.me.presence.get()
        assert presence.availability == "Offline", "nothing in a refused batch runs"
