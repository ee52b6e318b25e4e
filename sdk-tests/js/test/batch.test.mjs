// JSON batching through the JavaScript client's batch helpers
// (BatchRequestContent, BatchResponseContent). SPEC §3a. One presenced
// process serves this file.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import graph from "@microsoft/microsoft-graph-client";
import { Presenced, APP_ID } from "../lib/presenced.mjs";

const { BatchRequestContent, BatchResponseContent } = graph;

describe("JSON batching through @microsoft/microsoft-graph-client", () => {
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

  /** A batch step: a fetch Request aimed at this server, as the docs show. */
  const step = (id, method, path, body, dependsOn) => ({
    id,
    request: new Request(`${server.rootUrl}/v1.0${path}`, {
      method,
      ...(body ? { headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) } : {}),
    }),
    ...(dependsOn ? { dependsOn } : {}),
  });

  const pairs = [["Busy", "InACall"], ["DoNotDisturb", "Presenting"], ["Away", "Away"], ["Available", "Available"]];

  it("sends setPresence for several users in one batch and reads the answers", async () => {
    const users = pairs.map(() => randomUUID());
    const batch = new BatchRequestContent(users.map((user, i) => step(
      String(i), "POST", `/users/${user}/presence/setPresence`,
      { sessionId: APP_ID, availability: pairs[i][0], activity: pairs[i][1], expirationDuration: "PT1H" },
    )));
    const answers = new BatchResponseContent(await app.api("/$batch").post(await batch.getContent()));
    assert.equal(answers.getResponses().size, users.length);
    for (let i = 0; i < users.length; i++) {
      const res = answers.getResponseById(String(i));
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(await res.text(), "", "actions answer no body");
    }
    for (let i = 0; i < users.length; i++) {
      const p = await app.api(`/users/${users[i]}/presence`).get();
      assert.deepEqual([p.availability, p.activity], pairs[i]);
    }
  });

  it("runs a dependent read after the write and parses its JSON body", async () => {
    const user = randomUUID();
    const batch = new BatchRequestContent([
      step("write", "POST", `/users/${user}/presence/setPresence`,
        { sessionId: APP_ID, availability: "Busy", activity: "InAConferenceCall", expirationDuration: "PT1H" }),
      step("read", "GET", `/users/${user}/presence?$select=availability,activity`, undefined, ["write"]),
    ]);
    const answers = new BatchResponseContent(await app.api("/$batch").post(await batch.getContent()));
    const read = answers.getResponseById("read");
    assert.equal(read.status, 200);
    const body = await read.json();
    assert.deepEqual(
      { id: body.id, availability: body.availability, activity: body.activity },
      { id: user, availability: "Busy", activity: "InAConferenceCall" },
    );
    assert.equal(body.workLocation, undefined, "$select leaves the rest out");
  });

  it("answers a write for another user 403 and a request after a failed one 424", async () => {
    const me = randomUUID();
    const other = randomUUID();
    const client = server.graph(server.delegated(me));
    const body = { sessionId: APP_ID, availability: "Busy", activity: "InACall", expirationDuration: "PT1H" };
    const batch = new BatchRequestContent([
      step("theirs", "POST", `/users/${other}/presence/setPresence`, body),
      step("after", "POST", "/me/presence/setPresence", body, ["theirs"]),
    ]);
    const answers = new BatchResponseContent(await client.api("/$batch").post(await batch.getContent()));
    const theirs = answers.getResponseById("theirs");
    assert.equal(theirs.status, 403);
    assert.equal((await theirs.json()).error.code, "Forbidden");
    const after = answers.getResponseById("after");
    assert.equal(after.status, 424);
    assert.equal((await after.json()).error.code, "failedDependency");
    const mine = await client.api("/me/presence").get();
    assert.equal(mine.availability, "Offline", "the dependent request never ran");
  });
});
