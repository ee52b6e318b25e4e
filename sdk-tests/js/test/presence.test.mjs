// presenced driven through the official Microsoft Graph JavaScript client
// (@microsoft/microsoft-graph-client). SPEC section numbers refer to
// shared/SPEC.md. One presenced process serves this file.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import graph from "@microsoft/microsoft-graph-client";
import { Presenced, APP_ID } from "../lib/presenced.mjs";

const { GraphError } = graph;

const pair = (p) => [p.availability, p.activity];

/** Normalise a Graph dateTime (no offset) to 7 fractional digits. */
function sevenDigits(dt) {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?$/.exec(dt ?? "");
  assert.ok(m, `not a Graph dateTime without offset: ${JSON.stringify(dt)}`);
  return `${m[1]}.${(m[2] ?? "").padEnd(7, "0")}`;
}

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

describe("presenced through @microsoft/microsoft-graph-client", () => {
  const server = new Presenced();
  let app; // application-token client (Presence.ReadWrite.All)

  before(async () => {
    await server.start();
    app = server.graph(server.application());
  });

  after(async () => {
    const problem = await server.stop();
    if (problem) {
      const tail = server.stderrTail();
      server.cleanup();
      throw new Error(`${problem}\n${tail}`);
    }
    server.cleanup();
  });

  const setBody = (availability, activity, expirationDuration = "PT1H", sessionId = APP_ID) =>
    ({ sessionId, availability, activity, ...(expirationDuration ? { expirationDuration } : {}) });

  describe("get", () => {
    it("reads /me/presence of a user never seen as Offline", async () => {
      const user = randomUUID();
      const me = server.graph(server.delegated(user));
      const p = await me.api("/me/presence").get();
      assert.equal(p.id, user);
      assert.deepEqual(pair(p), ["Offline", "Offline"]);
      assert.equal(p.statusMessage, null);
      assert.ok(p.sequenceNumber, "sequenceNumber must be present");
      assert.equal(p.outOfOfficeSettings?.isOutOfOffice, false);
      assert.deepEqual(
        [p.workLocation?.workLocationType, p.workLocation?.source],
        ["unspecified", "none"],
      );
      assert.ok(p["@odata.context"], "@odata.context must be present");
    });

    it("reads /users/{id}/presence and /communications/presences/{id}", async () => {
      const user = randomUUID();
      await app.api(`/users/${user}/presence/setPresence`).post(setBody("Busy", "InACall"));
      const reader = server.graph(server.delegated(randomUUID()));
      const viaUsers = await reader.api(`/users/${user}/presence`).get();
      const viaComms = await reader.api(`/communications/presences/${user}`).get();
      for (const p of [viaUsers, viaComms]) {
        assert.equal(p.id, user);
        assert.deepEqual(pair(p), ["Busy", "InACall"]);
      }
      assert.ok(viaUsers["@odata.context"].endsWith(`$metadata#users('${user}')/presence/$entity`),
        viaUsers["@odata.context"]);
    });

    it("serves the same presence under /beta", async () => {
      const user = randomUUID();
      await app.api(`/users/${user}/presence/setPresence`).post(setBody("DoNotDisturb", "Presenting"));
      const p = await app.api(`/users/${user}/presence`).version("beta").get();
      assert.deepEqual(pair(p), ["DoNotDisturb", "Presenting"]);
    });

    it("getPresencesByUserId keeps the order of ids", async () => {
      const [busy, away, never] = [randomUUID(), randomUUID(), randomUUID()];
      await app.api(`/users/${busy}/presence/setPresence`).post(setBody("Busy", "InAConferenceCall"));
      await app.api(`/users/${away}/presence/setPresence`).post(setBody("Away", "Away"));
      const ids = [never, away, busy];
      const reader = server.graph(server.delegated(randomUUID()));
      const res = await reader.api("/communications/getPresencesByUserId").post({ ids });
      assert.deepEqual(res.value.map((p) => p.id), ids);
      assert.deepEqual(res.value.map(pair), [["Offline", "Offline"], ["Away", "Away"], ["Busy", "InAConferenceCall"]]);
    });
  });

  describe("setPresence / clearPresence", () => {
    it("sets then clears the app's session on /me", async () => {
      const me = server.graph(server.delegated(randomUUID()));
      await me.api("/me/presence/setPresence").post(setBody("Available", "Available"));
      const afterSet = await me.api("/me/presence").get();
      await me.api("/me/presence/clearPresence").post({ sessionId: APP_ID });
      const afterClear = await me.api("/me/presence").get();
      assert.deepEqual(pair(afterSet), ["Available", "Available"]);
      assert.deepEqual(pair(afterClear), ["Offline", "Offline"]);
      assert.notEqual(afterClear.sequenceNumber, afterSet.sequenceNumber);
    });

    it("sets and clears through /communications/presences/{id}", async () => {
      const user = randomUUID();
      await app.api(`/communications/presences/${user}/setPresence`).post(setBody("Busy", "InACall", "PT10M"));
      const afterSet = await app.api(`/communications/presences/${user}`).get();
      await app.api(`/communications/presences/${user}/clearPresence`).post({ sessionId: APP_ID });
      const afterClear = await app.api(`/communications/presences/${user}`).get();
      assert.deepEqual(pair(afterSet), ["Busy", "InACall"]);
      assert.deepEqual(pair(afterClear), ["Offline", "Offline"]);
    });

    it("clearPresence of an unknown session is itemNotFound", async () => {
      const err = await graphError(app.api(`/users/${randomUUID()}/presence/clearPresence`).post({ sessionId: APP_ID }));
      assert.equal(err.statusCode, 404);
      assert.equal(err.code, "itemNotFound");
    });
  });

  describe("preferred presence", () => {
    it("overrides the sessions until cleared", async () => {
      const me = server.graph(server.delegated(randomUUID()));
      await me.api("/me/presence/setPresence").post(setBody("Available", "Available"));
      await me.api("/me/presence/setUserPreferredPresence").post({ availability: "DoNotDisturb", activity: "DoNotDisturb" });
      const dnd = await me.api("/me/presence").get();
      await me.api("/me/presence/setUserPreferredPresence")
        .post({ availability: "Offline", activity: "OffWork", expirationDuration: "PT8H" });
      const offWork = await me.api("/me/presence").get();
      await me.api("/me/presence/clearUserPreferredPresence").post({});
      const cleared = await me.api("/me/presence").get();
      assert.deepEqual(pair(dnd), ["DoNotDisturb", "DoNotDisturb"]);
      assert.deepEqual(pair(offWork), ["Offline", "OffWork"]);
      assert.deepEqual(pair(cleared), ["Available", "Available"]);
    });

    it("without a live session reads Offline", async () => {
      const user = randomUUID();
      await app.api(`/users/${user}/presence/setUserPreferredPresence`).post({ availability: "Busy", activity: "Busy" });
      const p = await app.api(`/users/${user}/presence`).get();
      assert.deepEqual(pair(p), ["Offline", "Offline"]);
    });
  });

  describe("setStatusMessage", () => {
    it("without expiry reads back 9999-12-31 UTC for its owner and no instants for others", async () => {
      const user = randomUUID();
      const me = server.graph(server.delegated(user));
      await me.api("/me/presence/setStatusMessage")
        .post({ statusMessage: { message: { content: "Heads down until lunch", contentType: "text" } } });
      const mine = await me.api("/me/presence").get();
      const now = await server.clockNow();
      const theirs = await server.graph(server.delegated(randomUUID())).api(`/users/${user}/presence`).get();

      const sm = mine.statusMessage;
      assert.equal(sm.message.content, "Heads down until lunch");
      assert.equal(sm.message.contentType, "text");
      assert.equal(sevenDigits(sm.expiryDateTime.dateTime), "9999-12-31T23:59:59.9999999");
      assert.equal(sm.expiryDateTime.timeZone, "UTC");
      assert.equal(new Date(sm.publishedDateTime).getTime(), new Date(now).getTime(),
        "publishedDateTime is the (emulator) server time of the call");
      assert.match(sm.publishedDateTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/);

      assert.equal(theirs.statusMessage.message.content, "Heads down until lunch");
      assert.equal(theirs.statusMessage.expiryDateTime, undefined);
      assert.equal(theirs.statusMessage.publishedDateTime, undefined);
    });

    it("with expiry echoes the caller's time zone and expires on the emulator clock", async () => {
      const now = new Date(await server.clockNow());
      assert.equal(now.getUTCMonth(), 0, "the emulator clock is expected in January (PST = UTC-8)");
      const pst = new Date(now.getTime() + 2 * 3600_000 - 8 * 3600_000);
      const sent = pst.toISOString().slice(0, 19) + ".1234567";
      const me = server.graph(server.delegated(randomUUID()));
      await me.api("/me/presence/setStatusMessage").post({
        statusMessage: {
          message: { content: "Back at 11", contentType: "text" },
          expiryDateTime: { dateTime: sent, timeZone: "Pacific Standard Time" },
        },
      });
      const before = await me.api("/me/presence").get();
      await server.advance("PT1H");
      const still = await me.api("/me/presence").get();
      await server.advance("PT1H1M");
      const afterExpiry = await me.api("/me/presence").get();

      assert.equal(before.statusMessage.expiryDateTime.timeZone, "Pacific Standard Time");
      assert.equal(sevenDigits(before.statusMessage.expiryDateTime.dateTime), sent);
      assert.equal(still.statusMessage.message.content, "Back at 11");
      assert.equal(afterExpiry.statusMessage, null);
    });
  });

  describe("work location", () => {
    it("setAutomaticLocation, clearAutomaticLocation, setManualLocation, clearLocation", async () => {
      const me = server.graph(server.delegated(randomUUID()));
      const wl = async () => (await me.api("/me/presence").get()).workLocation;

      await me.api("/me/presence/setAutomaticLocation").post({ workLocationType: "remote" });
      const automatic = await wl();
      await me.api("/me/presence/clearAutomaticLocation").post();
      const afterClearAutomatic = await wl();
      await me.api("/me/presence/setManualLocation").post({ workLocationType: "office", placeId: "building-42" });
      const manual = await wl();
      await me.api("/me/presence/clearLocation").post();
      const afterClear = await wl();

      assert.deepEqual([automatic.workLocationType, automatic.source], ["remote", "automatic"]);
      assert.deepEqual([afterClearAutomatic.workLocationType, afterClearAutomatic.source], ["unspecified", "none"]);
      assert.deepEqual([manual.workLocationType, manual.source, manual.placeId], ["office", "manual", "building-42"]);
      assert.deepEqual([afterClear.workLocationType, afterClear.source], ["unspecified", "none"]);
    });

    it("is refused for an application token", async () => {
      const err = await graphError(app.api(`/users/${randomUUID()}/presence/setManualLocation`).post({ workLocationType: "office" }));
      assert.ok(err.statusCode >= 400 && err.statusCode < 500, String(err.statusCode));
      assert.ok(err.code);
    });
  });

  describe("errors", () => {
    it("an invalid pair surfaces as GraphError with our code and message", async () => {
      const me = server.graph(server.delegated(randomUUID()));
      const err = await graphError(me.api("/me/presence/setPresence").post(setBody("Available", "Busy")));
      assert.equal(err.statusCode, 400);
      assert.equal(err.code, "invalidRequest");
      assert.match(err.message, /Available/);
      assert.match(err.message, /Busy/);
      assert.ok(err.requestId, "innerError.request-id must be present (SPEC §6)");
      assert.match(err.headers.get("content-type") ?? "", /^application\/json/);
      assert.ok(err.headers.get("request-id"), "every response carries request-id (SPEC §6)");
    });

    it("a sessionId other than the calling app is invalidRequest", async () => {
      const me = server.graph(server.delegated(randomUUID()));
      const err = await graphError(me.api("/me/presence/setPresence").post(setBody("Available", "Available", "PT1H", randomUUID())));
      assert.equal(err.statusCode, 400);
      assert.equal(err.code, "invalidRequest");
      assert.match(err.message, /session/i);
    });

    it("a delegated write on another user is Forbidden", async () => {
      const me = server.graph(server.delegated(randomUUID()));
      const err = await graphError(me.api(`/users/${randomUUID()}/presence/setPresence`).post(setBody("Available", "Available")));
      assert.equal(err.statusCode, 403);
      assert.equal(err.code, "Forbidden");
    });

    it("/me with an application token is invalidRequest", async () => {
      const err = await graphError(app.api("/me/presence").get());
      assert.equal(err.statusCode, 400);
      assert.equal(err.code, "invalidRequest");
      assert.match(err.message, /\/me request is only valid with delegated authentication flow/);
    });
  });

  describe("emulator clock and simulated Teams clients", () => {
    it("an Available session fades to AvailableInactive, then Away, then Offline", async () => {
      const me = server.graph(server.delegated(randomUUID()));
      await me.api("/me/presence/setPresence").post(setBody("Available", "Available", "PT1H"));
      const seen = [await me.api("/me/presence").get()];
      for (const step of ["PT5M", "PT5M", "PT50M"]) {
        await server.advance(step);
        seen.push(await me.api("/me/presence").get());
      }
      assert.deepEqual(seen.map(pair), [
        ["Available", "Available"],
        ["Available", "AvailableInactive"],
        ["Away", "Away"],
        ["Offline", "Offline"],
      ]);
      const seqs = seen.map((p) => p.sequenceNumber);
      assert.deepEqual([...seqs].sort(), seqs, `sequenceNumber must sort higher on every change: ${seqs}`);
      assert.equal(new Set(seqs).size, seqs.length, `sequenceNumber must change on every change: ${seqs}`);
    });

    it("a simulated Teams client session aggregates with the app's session", async () => {
      const user = randomUUID();
      await app.api(`/users/${user}/presence/setPresence`).post(setBody("Available", "Available"));
      await server.putClientSession(user, "desktop", "Busy", "InACall", "PT1H");
      const withClient = await app.api(`/users/${user}/presence`).get();
      await server.deleteClientSession(user, "desktop");
      const withoutClient = await app.api(`/users/${user}/presence`).get();
      assert.deepEqual(pair(withClient), ["Busy", "InACall"]);
      assert.deepEqual(pair(withoutClient), ["Available", "Available"]);
    });
  });
});
