// Graph change notifications for presence (SPEC §7) through the official
// Microsoft Graph JavaScript client (@microsoft/microsoft-graph-client).
// Subscriptions are managed with client.api("/subscriptions…"); notifications
// arrive at a real node:http receiver on 127.0.0.1 that answers the
// validation handshake. Graph allows one presence subscription per user and
// application, so every test subscribes as a fresh user. One presenced
// process serves this file.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import graph from "@microsoft/microsoft-graph-client";
import { Presenced, WebhookReceiver, APP_ID, TENANT, WRONG_ECHO, REFUSE } from "../lib/presenced.mjs";

const { GraphError } = graph;

const PRESENCE_ODATA_TYPE = "#Microsoft.Graph.presence";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MINUTE = 60_000;

/** Asserts the promise rejects with a GraphError and returns it. */
async function graphError(promise) {
  let caught;
  await assert.rejects(promise, (err) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof GraphError, `expected a GraphError, got ${caught?.constructor?.name}: ${caught?.message}`);
  return caught;
}

const presenceResource = (user) => `/communications/presences/${user}`;
const about = (user, subscriptionId) => (item) =>
  item.resourceData?.id === user && (!subscriptionId || item.subscriptionId === subscriptionId);

describe("subscriptions through @microsoft/microsoft-graph-client", () => {
  const server = new Presenced();
  const receiver = new WebhookReceiver();

  before(async () => {
    await server.start();
    await receiver.start();
  });

  after(async () => {
    await receiver.close();
    const problem = await server.stop();
    if (problem) {
      const tail = server.stderrTail();
      server.cleanup();
      throw new Error(`${problem}\n${tail}`);
    }
    server.cleanup();
  });

  const now = async () => new Date(await server.clockNow());
  const subscriptionBody = async (resource, notificationUrl, minutes = 50, clientState = "secret-client-state") => ({
    changeType: "updated",
    notificationUrl,
    resource,
    expirationDateTime: new Date((await now()).getTime() + minutes * MINUTE).toISOString(),
    clientState,
  });
  const setBody = (availability, activity, expirationDuration = "PT1H") =>
    ({ sessionId: APP_ID, availability, activity, expirationDuration });

  it("create, list, get, renew, reauthorize, delete", async () => {
    const [subscriber, watched] = [randomUUID(), randomUUID()];
    const client = server.graph(server.delegated(subscriber));
    const url = receiver.endpoint();
    const start = await now();

    const created = await client.api("/subscriptions").post(await subscriptionBody(presenceResource(watched), url, 50));
    assert.match(created.id, GUID);
    assert.match(created["@odata.context"] ?? "", /\$metadata#subscriptions\/\$entity$/);
    assert.equal(created.resource, presenceResource(watched));
    assert.equal(created.changeType, "updated");
    assert.equal(created.notificationUrl, url);
    assert.equal(created.clientState, "secret-client-state");
    assert.equal(created.applicationId, APP_ID);
    assert.equal(created.creatorId, subscriber);
    assert.equal(new Date(created.expirationDateTime).getTime(), start.getTime() + 50 * MINUTE);
    assert.equal(created.includeResourceData, false);
    assert.equal(created.encryptionCertificate ?? null, null);

    const [validation, ...more] = receiver.validationsFor(url);
    assert.equal(more.length, 0, "one validation request per create");
    assert.ok(validation.query.get("validationToken"), "validationToken must not be empty");
    assert.match(validation.headers["content-type"] ?? "", /^text\/plain/);
    assert.equal(validation.body, "");

    const listed = await client.api("/subscriptions").get();
    const mine = listed.value.filter((s) => s.id === created.id);
    assert.equal(mine.length, 1);
    assert.equal(mine[0].clientState, null, "clientState is null in lists (SPEC §7)");

    const fetched = await client.api(`/subscriptions/${created.id}`).get();
    assert.equal(fetched.clientState, "secret-client-state");
    const viaBeta = await client.api(`/subscriptions/${created.id}`).version("beta").get();
    assert.equal(viaBeta.id, created.id);

    const renewedTo = new Date(start.getTime() + 58 * MINUTE).toISOString();
    const renewed = await client.api(`/subscriptions/${created.id}`).patch({ expirationDateTime: renewedTo });
    assert.equal(renewed.id, created.id);
    assert.equal(new Date(renewed.expirationDateTime).getTime(), new Date(renewedTo).getTime());

    await client.api(`/subscriptions/${created.id}/reauthorize`).post({});
    await client.api(`/subscriptions/${created.id}`).delete();

    const gone = await graphError(client.api(`/subscriptions/${created.id}`).get());
    assert.equal(gone.statusCode, 404);
    assert.ok(gone.code);
    const after = await client.api("/subscriptions").get();
    assert.ok(!after.value.some((s) => s.id === created.id));
  });

  it("a second subscription of the same user and app is a 409 conflict", async () => {
    const client = server.graph(server.delegated(randomUUID()));
    await client.api("/subscriptions").post(await subscriptionBody(presenceResource(randomUUID()), receiver.endpoint()));
    const err = await graphError(
      client.api("/subscriptions").post(await subscriptionBody(presenceResource(randomUUID()), receiver.endpoint())));
    assert.equal(err.statusCode, 409);
    assert.equal(err.code, "ExtensionError");
    assert.match(err.message, /A subscripton already exists/);
  });

  it("an application token may not subscribe to presence", async () => {
    const app = server.graph(server.application());
    const err = await graphError(
      app.api("/subscriptions").post(await subscriptionBody(presenceResource(randomUUID()), receiver.endpoint())));
    assert.equal(err.statusCode, 403);
    assert.equal(err.code, "ExtensionError");
  });

  it("failed validation handshakes are 400 ValidationError", async () => {
    const client = server.graph(server.delegated(randomUUID()));
    const wrong = receiver.endpoint(WRONG_ECHO);
    const refused = receiver.endpoint(REFUSE);
    const wrongEcho = await graphError(
      client.api("/subscriptions").post(await subscriptionBody(presenceResource(randomUUID()), wrong)));
    const notOk = await graphError(
      client.api("/subscriptions").post(await subscriptionBody(presenceResource(randomUUID()), refused)));
    for (const err of [wrongEcho, notOk]) {
      assert.equal(err.statusCode, 400);
      assert.equal(err.code, "ValidationError");
    }
    assert.match(wrongEcho.message, /must exactly match validationToken/);
    assert.match(notOk.message, /must respond with 200 OK/);
    assert.equal(receiver.validationsFor(wrong).length, 1);
    assert.equal(receiver.validationsFor(refused).length, 1);
    assert.deepEqual((await client.api("/subscriptions").get()).value, []);
  });

  it("a setPresence notifies the subscriber in Graph's format", async () => {
    const [subscriber, watched] = [randomUUID(), randomUUID()];
    const url = receiver.endpoint(undefined, "route=presence");
    const sub = await server.graph(server.delegated(subscriber))
      .api("/subscriptions").post(await subscriptionBody(presenceResource(watched), url));

    await server.graph(server.delegated(watched)).api("/me/presence/setPresence").post(setBody("Busy", "InACall"));
    const { post, body, item } = await receiver.waitForItem(url, about(watched, sub.id), "about the setPresence");

    assert.equal(post.query.get("route"), "presence", "the notificationUrl's query string is kept");
    assert.match(post.headers["content-type"] ?? "", /^application\/json/);
    assert.equal(body.validationTokens, undefined, "basic notifications carry no validationTokens");
    assert.deepEqual(item, {
      subscriptionId: sub.id,
      clientState: "secret-client-state",
      changeType: "updated",
      tenantId: TENANT,
      organizationId: TENANT,
      resource: presenceResource(watched),
      subscriptionExpirationDateTime: item.subscriptionExpirationDateTime,
      resourceData: {
        "@odata.type": PRESENCE_ODATA_TYPE,
        "@odata.id": `users/${watched}/presence`,
        id: watched,
      },
    });
    assert.equal(new Date(item.subscriptionExpirationDateTime).getTime(), new Date(sub.expirationDateTime).getTime());
    assert.match(item.subscriptionExpirationDateTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/);
  });

  it("a filter resource notifies for each listed user, under the subscription's resource", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const resource = `/communications/presences?$filter=id in ('${a}','${b}')`;
    const url = receiver.endpoint();
    const sub = await server.graph(server.delegated(randomUUID()))
      .api("/subscriptions").post(await subscriptionBody(resource, url));
    assert.equal(sub.resource, resource);

    const app = server.graph(server.application());
    await app.api(`/users/${a}/presence/setPresence`).post(setBody("Away", "Away"));
    await app.api(`/users/${b}/presence/setPresence`).post(setBody("DoNotDisturb", "Presenting"));
    for (const user of [a, b]) {
      const { item } = await receiver.waitForItem(url, about(user, sub.id), `about ${user}`);
      assert.equal(item.resource, resource);
      assert.equal(item.resourceData["@odata.id"], `users/${user}/presence`);
    }
  });

  it("a fade on the emulator clock notifies", async () => {
    const [subscriber, watched] = [randomUUID(), randomUUID()];
    const url = receiver.endpoint();
    const sub = await server.graph(server.delegated(subscriber))
      .api("/subscriptions").post(await subscriptionBody(presenceResource(watched), url, 55));
    await server.graph(server.delegated(watched)).api("/me/presence/setPresence")
      .post(setBody("Available", "Available", "PT1H"));
    await receiver.waitForItem(url, about(watched, sub.id), "about the setPresence");
    const before = receiver.notificationsFor(url).length;

    // Available/Available → Available/AvailableInactive at +5 minutes: one more
    // notification (basic notifications do not say what the presence is now).
    await server.advance("PT6M");
    await receiver.waitForItem(url, about(watched, sub.id), "after the fade to AvailableInactive",
      { skipPosts: before });
    const p = await server.graph(server.delegated(subscriber)).api(`/users/${watched}/presence`).get();
    assert.deepEqual([p.availability, p.activity], ["Available", "AvailableInactive"]);
  });
});
