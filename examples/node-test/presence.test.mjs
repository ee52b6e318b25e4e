// Testing a Graph presence integration with presenced, node:test and the
// official Microsoft Graph JavaScript client. Run it against a throwaway
// emulator with:
//
//   presenced exec -- npm test
//
// `presenced exec` starts an in-memory emulator (manual clock) on a free
// loopback port and gives this process PRESENCED_URL, PRESENCED_TENANT,
// PRESENCED_ADMIN_TOKEN (for the /_presenced endpoints) and
// PRESENCED_JWT_SECRET_FILE (to mint the tokens your app would get from
// Entra ID). Every test starts from an empty emulator (POST /_presenced/reset).

import { describe, it, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";

import graph from "@microsoft/microsoft-graph-client";

const { Client, HTTPMessageHandler, RetryHandler, RetryHandlerOptions } = graph;

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this suite with \`presenced exec -- npm test\``);
  return value;
}

const URL_BASE = env("PRESENCED_URL");
const TENANT = env("PRESENCED_TENANT");
const ADMIN = env("PRESENCED_ADMIN_TOKEN");
const SECRET = readFileSync(env("PRESENCED_JWT_SECRET_FILE"), "utf8").trim();
const APP_ID = "7d3a4c1e-58b2-4f6a-9e0d-1c2b3a4d5e6f"; // your app's client id

/** An HS256 token shaped like Entra ID's, signed with the emulator's secret. */
function mintToken(claims) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const body = {
    tid: TENANT, appid: APP_ID, aud: "https://graph.microsoft.com",
    iss: `https://sts.windows.net/${TENANT}/`, iat: now, nbf: now, exp: now + 3600, ...claims,
  };
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(body)}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

const appToken = () => mintToken({ roles: ["Presence.ReadWrite.All", "Presence.Read.All"] });
const userToken = (user) => mintToken({ oid: user, scp: "Presence.ReadWrite Presence.Read.All" });

/**
 * The official client. Over plain http it attaches no token by itself (its
 * AuthenticationHandler only does so for https Graph hosts), so the first
 * middleware sets Authorization; the RetryHandler is the SDK's own.
 */
function graphClient(token) {
  const bearer = {
    async execute(context) {
      context.options = context.options ?? {};
      const headers = context.options.headers;
      if (headers instanceof Headers) headers.set("Authorization", `Bearer ${token}`);
      else context.options.headers = { ...(headers ?? {}), Authorization: `Bearer ${token}` };
      return this.next.execute(context);
    },
    setNext(next) { this.next = next; },
  };
  return Client.initWithMiddleware({
    middleware: [bearer, new RetryHandler(new RetryHandlerOptions()), new HTTPMessageHandler()],
    baseUrl: URL_BASE,
    defaultVersion: "v1.0",
  });
}

/** The emulator's own endpoints (not Graph): plain fetch with the admin token. */
async function emulator(method, path, body) {
  const res = await fetch(URL_BASE + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const setPresence = (client, user, availability, activity) =>
  client.api(`/users/${user}/presence/setPresence`).post({
    sessionId: APP_ID, availability, activity, expirationDuration: "PT1H",
  });

describe("a Graph presence integration against presenced", () => {
  beforeEach(async () => {
    await emulator("POST", "/_presenced/reset");
  });

  it("starts every test from an empty emulator", async () => {
    assert.deepEqual((await emulator("GET", "/_presenced/requests")).value, []);
    assert.deepEqual((await emulator("GET", "/_presenced/state")).tenants, []);
  });

  it("sees an Available session fade when the clock moves", async () => {
    const user = randomUUID();
    const client = graphClient(appToken());
    await setPresence(client, user, "Available", "Available");
    await emulator("POST", "/_presenced/clock", { advance: "PT5M" });
    let presence = await client.api(`/users/${user}/presence`).get();
    assert.equal(presence.activity, "AvailableInactive");
    await emulator("POST", "/_presenced/clock", { advance: "PT5M" });
    presence = await client.api(`/users/${user}/presence`).get();
    assert.equal(presence.availability, "Away");
  });

  it("retries an injected 429 and succeeds", async () => {
    const user = randomUUID();
    const client = graphClient(appToken());
    await setPresence(client, user, "Busy", "InACall");
    const rule = await emulator("POST", "/_presenced/faults", {
      method: "GET", path: "/v1.0/users/*/presence", status: 429, retryAfterSeconds: 1, count: 1,
    });
    const presence = await client.api(`/users/${user}/presence`).get();
    assert.equal(presence.availability, "Busy");
    // The journal shows the refused request and the SDK's retry after it.
    const gets = (await emulator("GET", "/_presenced/requests?limit=10")).value
      .filter((r) => r.method === "GET");
    assert.deepEqual(gets.map((r) => [r.status, r.faulted]), [[200, false], [429, true]]);
    assert.equal(gets[1].faultRuleId, rule.id);
  });

  it("reads what the app sent from the request journal", async () => {
    const user = randomUUID();
    await setPresence(graphClient(appToken()), user, "DoNotDisturb", "Presenting");
    const [last] = (await emulator("GET", "/_presenced/requests?limit=1")).value;
    assert.equal(last.path, `/v1.0/users/${user}/presence/setPresence`);
    assert.equal(last.status, 200);
    assert.equal(last.appId, APP_ID);
    assert.equal(last.body.availability, "DoNotDisturb");
    assert.ok(!JSON.stringify(last).includes("Bearer"), "tokens are never journaled");
  });

  describe("change notifications", () => {
    let receiver;
    const received = [];
    let arrived = () => {};

    before(async () => {
      receiver = http.createServer((req, res) => {
        let body = "";
        req.on("data", (c) => { body += c; });
        req.on("end", () => {
          const token = new URL(req.url, "http://127.0.0.1").searchParams.get("validationToken");
          if (token !== null) {
            res.writeHead(200, { "Content-Type": "text/plain" }).end(token); // Graph's handshake
            return;
          }
          received.push(JSON.parse(body));
          res.writeHead(202).end();
          arrived();
        });
      });
      await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    });

    after(async () => {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    });

    it("receives a webhook when a watched user's presence changes", { timeout: 30_000 }, async () => {
      const user = randomUUID();
      const now = new Date((await emulator("GET", "/_presenced/clock")).now);
      const subscription = await graphClient(userToken(user)).api("/subscriptions").post({
        changeType: "updated",
        notificationUrl: `http://127.0.0.1:${receiver.address().port}/presence`,
        resource: `/communications/presences/${user}`,
        expirationDateTime: new Date(now.getTime() + 50 * 60_000).toISOString(),
        clientState: "secret-state",
      });
      const delivered = new Promise((resolve) => { arrived = resolve; });
      await setPresence(graphClient(appToken()), user, "Busy", "InACall");
      await delivered;
      const [item] = received.at(-1).value;
      assert.equal(item.subscriptionId, subscription.id);
      assert.equal(item.clientState, "secret-state");
      assert.equal(item.resourceData.id, user);
    });
  });
});
