"""Graph change notifications for presence (SPEC §7) through msgraph-sdk.

Subscriptions are created, listed, renewed, reauthorized and deleted with
GraphServiceClient's `subscriptions` request builders, as an application
would against graph.microsoft.com. Notifications arrive at a real webhook
receiver on 127.0.0.1 (conftest.WebhookReceiver), which answers the
validation handshake. Rich notifications are decrypted with `cryptography`
following Graph's recipe, and their validationTokens are verified with PyJWT
against presenced's JWKS.

msgraph-sdk 1.x ships no ChangeNotificationCollection model (Kiota trims
types no request builder returns), so notification items are read with the
SDK's own JSON parse node (kiota_serialization_json) using the types Graph's
metadata gives them (Edm.Guid, Edm.DateTimeOffset), and decrypted resource
data is parsed into the SDK's `Presence` model.

Graph allows one presence subscription per user and application, so every
test subscribes as a fresh user.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Optional

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding as sym_padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.presence import Presence
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)

from conftest import APP_ID, REFUSE, TENANT, WRONG_ECHO, Presenced, WebhookReceiver

# The `azp`/`appid` of Graph's change-notification publisher (SPEC §7).
GRAPH_NOTIFICATION_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
PRESENCE_ODATA_TYPE = "#Microsoft.Graph.presence"


def aio(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def fresh() -> str:
    return str(uuid.uuid4())


def now_of(server: Presenced) -> datetime:
    return datetime.fromisoformat(server.clock_now().replace("Z", "+00:00")).astimezone(timezone.utc)


def presence_resource(user: str) -> str:
    return f"/communications/presences/{user}"


def set_presence_body(availability: str, activity: str, duration: str = "PT1H") -> SetPresencePostRequestBody:
    # An ISO 8601 string, not a timedelta: see test_presence_sdk.set_presence_body.
    return SetPresencePostRequestBody(session_id=APP_ID, availability=availability, activity=activity,
                                      expiration_duration=duration)  # type: ignore[arg-type]


async def expect_odata_error(awaitable: Awaitable[Any]) -> ODataError:
    with pytest.raises(ODataError) as info:
        await awaitable
    return info.value


def subscription_body(
    server: Presenced,
    resource: str,
    notification_url: str,
    *,
    minutes: int = 50,
    client_state: Optional[str] = "secret-client-state",
    certificate: Optional["EncryptionCertificate"] = None,
) -> Subscription:
    body = Subscription(
        change_type="updated",
        notification_url=notification_url,
        resource=resource,
        expiration_date_time=now_of(server) + timedelta(minutes=minutes),
        client_state=client_state,
    )
    if certificate is not None:
        body.include_resource_data = True
        body.encryption_certificate = certificate.der_base64
        body.encryption_certificate_id = certificate.id
    return body


def parse_item(item: dict[str, Any]) -> dict[str, Any]:
    """Reads a notification item with the SDK's JSON parse node, with the
    types Graph's metadata gives changeNotification's properties."""
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(item).encode())

    def child(name: str) -> Any:
        c = node.get_child_node(name)
        assert c is not None, f"notification item has no {name}: {item}"
        return c

    resource_data = child("resourceData")
    return {
        "subscriptionId": child("subscriptionId").get_uuid_value(),
        "tenantId": child("tenantId").get_uuid_value(),
        "organizationId": child("organizationId").get_uuid_value(),
        "subscriptionExpirationDateTime": child("subscriptionExpirationDateTime").get_datetime_value(),
        "changeType": child("changeType").get_str_value(),
        "clientState": child("clientState").get_str_value(),
        "resource": child("resource").get_str_value(),
        "resourceData.id": resource_data.get_child_node("id").get_str_value(),
        "resourceData.@odata.type": resource_data.get_child_node("@odata.type").get_str_value(),
        "resourceData.@odata.id": resource_data.get_child_node("@odata.id").get_str_value(),
    }


def about(user: str, subscription_id: Optional[str] = None) -> Callable[[dict[str, Any]], bool]:
    def match(item: dict[str, Any]) -> bool:
        return (item.get("resourceData") or {}).get("id") == user and (
            subscription_id is None or item.get("subscriptionId") == subscription_id)

    return match


# ---------------------------------------------------------------------- rich notifications


class EncryptionCertificate:
    """An RSA-2048 key and a self-signed certificate, as a Graph subscriber
    makes for rich notifications."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "presenced sdk-tests")])
        start = datetime.now(timezone.utc) - timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self.der_base64 = base64.b64encode(self.der).decode()
        self.id = f"sdk-tests-cert-{uuid.uuid4()}"
        self.thumbprint = hashlib.sha1(self.der).hexdigest()

    def decrypt(self, encrypted: dict[str, Any]) -> dict[str, Any]:
        """Graph's recipe: unwrap K (RSA-OAEP SHA-1), check HMAC-SHA256(K,
        ciphertext), AES-256-CBC decrypt with IV = K[:16], PKCS7 unpad."""
        key = self.key.decrypt(
            base64.b64decode(encrypted["dataKey"]),
            padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
        )
        assert len(key) == 32, f"the unwrapped symmetric key must be 32 bytes, got {len(key)}"
        ciphertext = base64.b64decode(encrypted["data"])
        signature = hmac.new(key, ciphertext, hashlib.sha256).digest()
        assert hmac.compare_digest(signature, base64.b64decode(encrypted["dataSignature"])), \
            "dataSignature is not HMAC-SHA256(K, data)"
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = sym_padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        return json.loads(plain)


@pytest.fixture(scope="module")
def certificate() -> EncryptionCertificate:
    return EncryptionCertificate()


def decrypted_pair(cert: EncryptionCertificate, availability: str, activity: str) -> Callable[[dict[str, Any]], bool]:
    def match(item: dict[str, Any]) -> bool:
        content = item.get("encryptedContent")
        if not content:
            return False
        data = cert.decrypt(content)
        return (data.get("availability"), data.get("activity")) == (availability, activity)

    return match


def decrypted_summary(cert: EncryptionCertificate) -> Callable[[dict[str, Any]], Any]:
    """For failure messages: what a rich item says, decrypted."""

    def describe(item: dict[str, Any]) -> Any:
        content = item.get("encryptedContent")
        if not content:
            return {"without encryptedContent": item}
        data = cert.decrypt(content)
        return (data.get("availability"), data.get("activity"), data.get("sequenceNumber"))

    return describe


def as_sdk_presence(data: dict[str, Any]) -> Presence:
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(data).encode())
    return node.get_object_value(Presence)


# ------------------------------------------------------------------------- CRUD


@aio
async def test_create_list_get_renew_reauthorize_delete(server: Presenced, receiver: WebhookReceiver) -> None:
    subscriber, watched = fresh(), fresh()
    url = receiver.endpoint()
    now = now_of(server)
    async with server.graph(server.delegated(subscriber)) as graph:
        created = await graph.subscriptions.post(
            subscription_body(server, presence_resource(watched), url, minutes=50))
        assert created is not None and created.id is not None
        sid = created.id
        listed = await graph.subscriptions.get()
        fetched = await graph.subscriptions.by_subscription_id(sid).get()
        renewed = await graph.subscriptions.by_subscription_id(sid).patch(
            Subscription(expiration_date_time=now + timedelta(minutes=58)))
        after_renew = await graph.subscriptions.by_subscription_id(sid).get()
        await graph.subscriptions.by_subscription_id(sid).reauthorize.post()
        await graph.subscriptions.by_subscription_id(sid).delete()
        gone = await expect_odata_error(graph.subscriptions.by_subscription_id(sid).get())
        listed_after = await graph.subscriptions.get()

    # 201, parsed by the SDK's Subscription model.
    uuid.UUID(sid)
    assert created.resource == presence_resource(watched)
    assert created.change_type == "updated"
    assert created.notification_url == url
    assert created.client_state == "secret-client-state"
    assert created.application_id == APP_ID
    assert created.creator_id == subscriber
    assert created.expiration_date_time == now + timedelta(minutes=50)
    assert created.include_resource_data is False
    assert created.encryption_certificate is None
    assert created.latest_supported_tls_version == "v1_2"
    assert str(created.additional_data.get("@odata.context", "")).endswith("$metadata#subscriptions/$entity"), \
        created.additional_data

    # The validation handshake reached the receiver first (SPEC §7).
    validations = receiver.validations_for(url)
    assert len(validations) == 1, validations
    v = validations[0]
    assert v.query["validationToken"][0], "validationToken must not be empty"
    assert v.headers.get("content-type", "").startswith("text/plain"), v.headers
    assert v.body == b""

    # List: the caller's own, clientState null.
    assert listed is not None and listed.value is not None
    mine = [s for s in listed.value if s.id == sid]
    assert len(mine) == 1, [s.id for s in listed.value]
    assert mine[0].client_state is None
    assert mine[0].resource == presence_resource(watched)
    assert fetched is not None and fetched.client_state == "secret-client-state"
    assert fetched.expiration_date_time == now + timedelta(minutes=50)

    # Renew.
    assert renewed is not None and renewed.id == sid
    assert renewed.expiration_date_time == now + timedelta(minutes=58)
    assert after_renew is not None and after_renew.expiration_date_time == now + timedelta(minutes=58)

    # Delete, then 404 as an ODataError.
    assert gone.response_status_code == 404
    assert gone.error is not None and gone.error.code
    assert listed_after is not None and sid not in [s.id for s in (listed_after.value or [])]


@aio
async def test_expiry_under_45_minutes_is_raised_and_over_60_is_refused(
    server: Presenced, receiver: WebhookReceiver
) -> None:
    now = now_of(server)
    async with server.graph(server.delegated(fresh())) as graph:
        short = await graph.subscriptions.post(
            subscription_body(server, presence_resource(fresh()), receiver.endpoint(), minutes=10))
    async with server.graph(server.delegated(fresh())) as graph:
        too_far = await expect_odata_error(graph.subscriptions.post(
            subscription_body(server, presence_resource(fresh()), receiver.endpoint(), minutes=61)))

    assert short is not None and short.expiration_date_time == now + timedelta(minutes=45)
    assert too_far.response_status_code == 400


@aio
async def test_second_subscription_of_the_same_user_and_app_is_a_conflict(
    server: Presenced, receiver: WebhookReceiver
) -> None:
    async with server.graph(server.delegated(fresh())) as graph:
        first = await graph.subscriptions.post(
            subscription_body(server, presence_resource(fresh()), receiver.endpoint()))
        err = await expect_odata_error(graph.subscriptions.post(
            subscription_body(server, presence_resource(fresh()), receiver.endpoint())))

    assert first is not None and first.id
    assert err.response_status_code == 409
    assert err.error is not None and err.error.code == "ExtensionError"
    assert err.error.message and "A subscripton already exists" in err.error.message, err.error.message


@aio
async def test_application_token_may_not_subscribe_to_presence(
    server: Presenced, receiver: WebhookReceiver
) -> None:
    async with server.graph(server.application()) as app:
        err = await expect_odata_error(app.subscriptions.post(
            subscription_body(server, presence_resource(fresh()), receiver.endpoint())))
    assert err.response_status_code == 403
    assert err.error is not None and err.error.code == "ExtensionError"
    assert err.error.message and "not authorized" in err.error.message, err.error.message


@aio
async def test_failed_validation_handshakes_are_validation_errors(
    server: Presenced, receiver: WebhookReceiver
) -> None:
    wrong, refused = receiver.endpoint(WRONG_ECHO), receiver.endpoint(REFUSE)
    async with server.graph(server.delegated(fresh())) as graph:
        wrong_echo = await expect_odata_error(graph.subscriptions.post(
            subscription_body(server, presence_resource(fresh()), wrong)))
        not_ok = await expect_odata_error(graph.subscriptions.post(
            subscription_body(server, presence_resource(fresh()), refused)))
        listed = await graph.subscriptions.get()

    assert len(receiver.validations_for(wrong)) == 1
    assert len(receiver.validations_for(refused)) == 1
    for err in (wrong_echo, not_ok):
        assert err.response_status_code == 400
        assert err.error is not None and err.error.code == "ValidationError", err.error
    assert wrong_echo.error is not None and "must exactly match validationToken" in (wrong_echo.error.message or "")
    assert not_ok.error is not None and "must respond with 200 OK" in (not_ok.error.message or "")
    assert listed is not None and not listed.value, "a failed handshake must not leave a subscription"


@aio
async def test_invalid_subscriptions_are_bad_requests(server: Presenced, receiver: WebhookReceiver) -> None:
    watched = fresh()
    ok_url = receiver.endpoint()
    cases = {
        # Not a loopback host, yet nothing would leave the machine if the
        # server wrongly tried it (0.0.0.0 connects locally; port 9 is closed).
        "http to a non-loopback host": subscription_body(
            server, presence_resource(watched), "http://0.0.0.0:9/hook"),
        "changeType created": subscription_body(server, presence_resource(watched), ok_url),
        "$select on the resource": subscription_body(
            server, presence_resource(watched) + "?$select=availability", ok_url),
        "a resource that is not presence": subscription_body(server, "/me/messages", ok_url),
        "an expiry in the past": subscription_body(server, presence_resource(watched), ok_url, minutes=-5),
    }
    cases["changeType created"].change_type = "created"
    errors: dict[str, ODataError] = {}
    async with server.graph(server.delegated(fresh())) as graph:
        for name, body in cases.items():
            errors[name] = await expect_odata_error(graph.subscriptions.post(body))
        listed = await graph.subscriptions.get()

    for name, err in errors.items():
        assert err.response_status_code == 400, f"{name}: {err.response_status_code} {err.error}"
        assert err.error is not None and err.error.code and err.error.message, name
    http = errors["http to a non-loopback host"].error
    assert http is not None
    assert (http.code, http.message) == ("InvalidRequest", "NotificationUrl scheme='http' is not supported.")
    assert receiver.validations_for(ok_url) == [], "a refused request must not start the handshake"
    assert listed is not None and not listed.value


@aio
async def test_patching_the_notification_url_revalidates_and_moves_deliveries(
    server: Presenced, receiver: WebhookReceiver
) -> None:
    subscriber, watched = fresh(), fresh()
    first, second, bad = receiver.endpoint(), receiver.endpoint(), receiver.endpoint(WRONG_ECHO)
    async with server.graph(server.delegated(subscriber)) as graph:
        sub = await graph.subscriptions.post(subscription_body(server, presence_resource(watched), first))
        assert sub is not None and sub.id
        item = graph.subscriptions.by_subscription_id(sub.id)
        refused = await expect_odata_error(item.patch(Subscription(notification_url=bad)))
        kept = await item.get()
        moved = await item.patch(Subscription(notification_url=second))

    assert refused.response_status_code == 400
    assert refused.error is not None and refused.error.code == "ValidationError"
    assert len(receiver.validations_for(bad)) == 1
    assert kept is not None and kept.notification_url == first
    assert moved is not None and moved.notification_url == second
    assert len(receiver.validations_for(second)) == 1, "a new notificationUrl is validated (SPEC §7)"

    async with server.graph(server.delegated(watched)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("DoNotDisturb", "Presenting"))
    receiver.wait_for_item(second, about(watched, sub.id), "at the new notificationUrl")
    assert receiver.notifications_for(first) == []


# ------------------------------------------------------------------------ notifications


@aio
async def test_set_presence_notifies_the_subscriber(server: Presenced, receiver: WebhookReceiver) -> None:
    subscriber, watched = fresh(), fresh()
    url = receiver.endpoint(query="route=presence&x=1")
    async with server.graph(server.delegated(subscriber)) as graph:
        sub = await graph.subscriptions.post(subscription_body(server, presence_resource(watched), url))
    assert sub is not None and sub.id

    async with server.graph(server.delegated(watched)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("Busy", "InACall"))
    post, item = receiver.wait_for_item(url, about(watched, sub.id), "about the setPresence")

    # The notification URL's own query string is kept, on validation and on delivery.
    v = receiver.validations_for(url)[0]
    assert v.query.get("route") == ["presence"] and v.query.get("x") == ["1"], v.query
    assert post.query == {"route": ["presence"], "x": ["1"]}, post.query
    assert post.headers.get("content-type", "").startswith("application/json"), post.headers

    body = post.json()
    assert "validationTokens" not in body, "basic notifications carry no validationTokens"
    assert "encryptedContent" not in item, "basic notifications carry no resource data"
    parsed = parse_item(item)
    assert parsed == {
        "subscriptionId": uuid.UUID(sub.id),
        "tenantId": uuid.UUID(TENANT),
        "organizationId": uuid.UUID(TENANT),
        "subscriptionExpirationDateTime": sub.expiration_date_time,
        "changeType": "updated",
        "clientState": "secret-client-state",
        "resource": presence_resource(watched),
        "resourceData.id": watched,
        "resourceData.@odata.type": PRESENCE_ODATA_TYPE,
        "resourceData.@odata.id": f"users/{watched}/presence",
    }


@aio
async def test_notifications_carry_the_renewed_expiry(server: Presenced, receiver: WebhookReceiver) -> None:
    subscriber, watched = fresh(), fresh()
    url = receiver.endpoint()
    now = now_of(server)
    async with server.graph(server.delegated(subscriber)) as graph:
        sub = await graph.subscriptions.post(subscription_body(server, presence_resource(watched), url, minutes=46))
        assert sub is not None and sub.id
        await graph.subscriptions.by_subscription_id(sub.id).patch(
            Subscription(expiration_date_time=now + timedelta(minutes=59)))
    async with server.graph(server.application()) as app:
        await app.users.by_user_id(watched).presence.set_presence.post(set_presence_body("Away", "Away"))
    _, item = receiver.wait_for_item(url, about(watched, sub.id), "after the renewal")
    assert parse_item(item)["subscriptionExpirationDateTime"] == now + timedelta(minutes=59)


@aio
async def test_filter_resource_notifies_for_each_listed_user(server: Presenced, receiver: WebhookReceiver) -> None:
    a, b = fresh(), fresh()
    resource = f"/communications/presences?$filter=id in ('{a}','{b}')"
    url = receiver.endpoint()
    async with server.graph(server.delegated(fresh())) as graph:
        sub = await graph.subscriptions.post(subscription_body(server, resource, url))
    assert sub is not None and sub.id and sub.resource == resource

    async with server.graph(server.application()) as app:
        await app.users.by_user_id(b).presence.set_presence.post(set_presence_body("DoNotDisturb", "Presenting"))
        await app.users.by_user_id(a).presence.set_presence.post(set_presence_body("Available", "Available"))
    for user in (a, b):
        _, item = receiver.wait_for_item(url, about(user, sub.id), f"about {user}")
        parsed = parse_item(item)
        assert parsed["resource"] == resource
        assert parsed["resourceData.@odata.id"] == f"users/{user}/presence"


@aio
async def test_a_deleted_subscription_is_not_notified(server: Presenced, receiver: WebhookReceiver) -> None:
    watched = fresh()
    deleted_url, live_url = receiver.endpoint(), receiver.endpoint()
    async with server.graph(server.delegated(fresh())) as graph:
        doomed = await graph.subscriptions.post(subscription_body(server, presence_resource(watched), deleted_url))
        assert doomed is not None and doomed.id
        await graph.subscriptions.by_subscription_id(doomed.id).delete()
    async with server.graph(server.delegated(fresh())) as graph:
        live = await graph.subscriptions.post(subscription_body(server, presence_resource(watched), live_url))
    assert live is not None and live.id

    async with server.graph(server.delegated(watched)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("Busy", "InAConferenceCall"))
    # The live subscription is the witness that the change was delivered;
    # the deleted one's POST would have gone out in the same round.
    receiver.wait_for_item(live_url, about(watched, live.id), "for the live subscription")
    time.sleep(0.5)
    assert receiver.notifications_for(deleted_url) == []


# ----------------------------------------------------------------- rich notifications


@aio
async def test_rich_notification_decrypts_and_its_validation_token_verifies(
    server: Presenced, receiver: WebhookReceiver, certificate: EncryptionCertificate
) -> None:
    subscriber, watched = fresh(), fresh()
    url = receiver.endpoint()
    async with server.graph(server.delegated(subscriber)) as graph:
        sub = await graph.subscriptions.post(
            subscription_body(server, presence_resource(watched), url, certificate=certificate))
    assert sub is not None and sub.id
    assert sub.include_resource_data is True
    assert sub.encryption_certificate is None, "encryptionCertificate is never echoed (SPEC §7)"
    assert sub.encryption_certificate_id == certificate.id

    async with server.graph(server.delegated(watched)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("Busy", "InACall"))
        presence = await graph.me.presence.get()
    assert presence is not None
    post, item = receiver.wait_for_item(url, about(watched, sub.id), "with resource data")

    content = item.get("encryptedContent")
    assert content, f"a rich notification item carries encryptedContent: {item}"
    assert content["encryptionCertificateId"] == certificate.id
    assert content["encryptionCertificateThumbprint"].lower() == certificate.thumbprint
    data = certificate.decrypt(content)
    assert data == {
        "@odata.id": f"users/{watched}/presence",
        "@odata.type": PRESENCE_ODATA_TYPE,
        "id": watched,
        "availability": "Busy",
        "activity": "InACall",
        "sequenceNumber": presence.sequence_number,
    }
    as_sdk = as_sdk_presence(data)
    assert (as_sdk.id, as_sdk.availability, as_sdk.activity) == (watched, "Busy", "InACall")
    assert as_sdk.sequence_number == presence.sequence_number
    assert parse_item(item)["subscriptionId"] == uuid.UUID(sub.id)

    # validationTokens: ES256 JWTs for this app, verifiable with the JWKS.
    tokens = post.json().get("validationTokens")
    assert isinstance(tokens, list) and len(tokens) == 1, tokens
    jwks = jwt.PyJWKSet.from_dict(server.public_get("/_presenced/.well-known/jwks.json"))
    header = jwt.get_unverified_header(tokens[0])
    assert header.get("alg") == "ES256" and header.get("kid"), header
    claims = jwt.decode(
        tokens[0],
        key=jwks[header["kid"]],
        algorithms=["ES256"],
        audience=APP_ID,
        issuer=f"https://sts.windows.net/{TENANT}/",
        options={"require": ["aud", "iss", "iat", "nbf", "exp"]},
    )
    assert claims["tid"] == TENANT
    assert claims["azp"] == GRAPH_NOTIFICATION_APP_ID
    assert claims["appid"] == GRAPH_NOTIFICATION_APP_ID
    assert abs(claims["iat"] - time.time()) < 300, "validation tokens are stamped with real time"
    assert 3000 <= claims["exp"] - claims["iat"] <= 3700, claims
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(tokens[0], key=jwks[header["kid"]], algorithms=["ES256"], audience=fresh())


@aio
async def test_rich_notifications_follow_the_fade_on_the_emulator_clock(
    server: Presenced, receiver: WebhookReceiver, certificate: EncryptionCertificate
) -> None:
    subscriber, watched = fresh(), fresh()
    url = receiver.endpoint()
    async with server.graph(server.delegated(subscriber)) as graph:
        sub = await graph.subscriptions.post(
            subscription_body(server, presence_resource(watched), url, minutes=55, certificate=certificate))
    assert sub is not None and sub.id

    async with server.graph(server.delegated(watched)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("Available", "Available", "PT1H"))

    def wait(availability: str, activity: str, when: str) -> dict[str, Any]:
        return receiver.wait_for_item(url, decrypted_pair(certificate, availability, activity),
                                      f"{availability}/{activity} {when}",
                                      describe=decrypted_summary(certificate))[1]

    seen = [wait("Available", "Available", "after setPresence")]
    server.advance("PT6M")
    seen.append(wait("Available", "AvailableInactive", "6 minutes later"))
    server.advance("PT5M")
    seen.append(wait("Away", "Away", "11 minutes later"))

    datas = [certificate.decrypt(item["encryptedContent"]) for item in seen]
    assert all(item["subscriptionId"] == sub.id for item in seen)
    assert all(d["id"] == watched for d in datas)
    seqs = [d["sequenceNumber"] for d in datas]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, f"sequenceNumber must grow with each change: {seqs}"


@aio
async def test_rich_notification_on_session_expiry_reads_offline_with_a_higher_sequence_number(
    server: Presenced, receiver: WebhookReceiver, certificate: EncryptionCertificate
) -> None:
    subscriber, watched = fresh(), fresh()
    url = receiver.endpoint()
    async with server.graph(server.delegated(subscriber)) as graph:
        sub = await graph.subscriptions.post(
            subscription_body(server, presence_resource(watched), url, certificate=certificate))
    assert sub is not None and sub.id

    # Busy does not fade (SPEC §4): the only change is the expiry at +5 minutes.
    async with server.graph(server.delegated(watched)) as graph:
        await graph.me.presence.set_presence.post(set_presence_body("Busy", "InACall", "PT5M"))
    describe = decrypted_summary(certificate)
    _, busy = receiver.wait_for_item(url, decrypted_pair(certificate, "Busy", "InACall"),
                                     "Busy/InACall after setPresence", describe=describe)
    server.advance("PT6M")
    _, offline = receiver.wait_for_item(url, decrypted_pair(certificate, "Offline", "Offline"),
                                        "Offline/Offline after the session expired", describe=describe)
    async with server.graph(server.delegated(subscriber)) as graph:
        now_reads = await graph.users.by_user_id(watched).presence.get()

    before = certificate.decrypt(busy["encryptedContent"])["sequenceNumber"]
    after = certificate.decrypt(offline["encryptedContent"])["sequenceNumber"]
    assert now_reads is not None and now_reads.sequence_number == after
    assert after > before, (
        f"sequenceNumber must sort higher when the session expires (SPEC §2): {before} then {after}")
