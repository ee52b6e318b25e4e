// Graph's throttling (presenced --rate-limit) through the official JS client:
// its RetryHandler honours Retry-After on a 429 and the call succeeds. The
// proof that it retried: just before its call, a plain fetch with the same
// token is refused with 429 TooManyRequests, and nothing refills the bucket
// before the Retry-After the server gave.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { Presenced } from "../lib/presenced.mjs";

describe("throttling through @microsoft/microsoft-graph-client", () => {
  const server = new Presenced({ extraArgs: ["--rate-limit", "2/2s"] });

  before(async () => {
    await server.start();
  });

  after(async () => {
    const problem = await server.stop();
    const tail = problem ? server.stderrTail() : "";
    server.cleanup();
    if (problem) throw new Error(`${problem}\n${tail}`);
  });

  it("retries a 429 after Retry-After and succeeds", { timeout: 60_000 }, async () => {
    const user = randomUUID();
    const token = server.delegated(user);
    const plain = () =>
      fetch(`${server.rootUrl}/v1.0/me/presence`, { headers: { Authorization: `Bearer ${token}` } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await plain()).status);
    assert.deepEqual(statuses, [200, 200, 429]);
    const refused = await plain();
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal((await refused.json()).error.code, "TooManyRequests");
    const presence = await server.graph(token).api("/me/presence").get();
    assert.equal(presence.id, user);
    assert.equal(presence.availability, "Offline");
  });
});
