// presenced over TLS (--tls-self-signed) through the stock Graph JavaScript
// client, set up exactly as Graph's docs show:
//
//   Client.init({ authProvider: (done) => done(null, token), baseUrl, defaultVersion, customHosts })
//
// with no custom middleware. The client's AuthenticationHandler attaches the
// token only to https URLs of Graph hosts or of `customHosts`; over https to
// 127.0.0.1 with customHosts {"127.0.0.1"} the default chain
// (AuthenticationHandler → RetryHandler → RedirectHandler → TelemetryHandler →
// HTTPMessageHandler → fetch) works unchanged.
//
// Node trusts a self-signed certificate only through NODE_EXTRA_CA_CERTS, which
// it reads once at process start. scripts/sdk-tests.sh therefore has presenced
// make the certificate before node starts, and passes the data dir holding it
// in PRESENCED_SDK_TLS_DIR. This file's server copies that certificate and key
// into its own fresh data dir, so it serves the certificate Node trusts. Run
// any other way (plain `npm test`), the file prepares the certificate itself
// and re-runs itself in a child node with both variables set.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID, X509Certificate } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";

import graph from "@microsoft/microsoft-graph-client";
import { Presenced, WebhookReceiver, APP_ID, SELF_SIGNED_CERT } from "../lib/presenced.mjs";

const { Client, GraphError } = graph;

const TLS_DIR = process.env.PRESENCED_SDK_TLS_DIR;
const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS;
const CHILD_TIMEOUT_MS = 120_000;
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

/** ALPN result and peer certificate of one TLS handshake with `protocols` offered. */
function handshake(port, protocols) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ALPNProtocols: protocols, timeout: 10_000 }, () => {
      const result = { alpn: socket.alpnProtocol, cert: socket.getPeerX509Certificate() };
      socket.end();
      resolve(result);
    });
    socket.once("timeout", () => socket.destroy(new Error(`TLS handshake with 127.0.0.1:${port} timed out`)));
    socket.once("error", reject);
  });
}

/**
 * The environment for a child `node --test`: ours plus `extra`, without
 * NODE_TEST_CONTEXT, which the parent runner sets for its own children and
 * which would make the child report to it instead of running as a test run.
 */
function childEnv(extra) {
  const env = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

if (!TLS_DIR || !EXTRA_CA) {
  describe("TLS through Client.init (stock middleware)", () => {
    it("runs in a child node that trusts presenced's self-signed certificate", async (t) => {
      // Let presenced make the certificate once, then hand it to a fresh node.
      const prep = new Presenced({ tls: true });
      try {
        await prep.start();
        const problem = await prep.stop();
        assert.equal(problem, undefined, `${problem}\n${prep.stderrTail()}`);
        const child = spawnSync(process.execPath, ["--test", "--test-reporter=spec", fileURLToPath(import.meta.url)], {
          env: childEnv({ PRESENCED_SDK_TLS_DIR: prep.dataDir, NODE_EXTRA_CA_CERTS: prep.certificatePath }),
          encoding: "utf8",
          timeout: CHILD_TIMEOUT_MS,
          killSignal: "SIGKILL",
        });
        assert.equal(child.error, undefined, `child node failed to run: ${child.error}`);
        assert.equal(child.status, 0, `the TLS tests failed in the child node:\n${child.stdout}\n${child.stderr}`);
        const passed = /^ℹ pass (\d+)$/m.exec(child.stdout);
        assert.ok(passed && Number(passed[1]) > 0 && /^ℹ fail 0$/m.test(child.stdout),
          `the child node ran no passing TLS tests:\n${child.stdout}\n${child.stderr}`);
        t.diagnostic(`child node: ${passed[1]} TLS test(s) passed`);
      } finally {
        prep.cleanup();
      }
    });
  });
} else {
  describe("TLS through Client.init (stock middleware)", () => {
    const server = new Presenced({ tls: true, certificateFrom: TLS_DIR });
    const receiver = new WebhookReceiver();

    /** The client exactly as Graph's docs set it up; only baseUrl and customHosts name presenced. */
    const stockClient = (token, { customHosts = new Set(["127.0.0.1"]) } = {}) => Client.init({
      authProvider: (done) => done(null, token),
      baseUrl: `${server.rootUrl}/`,
      defaultVersion: "v1.0",
      ...(customHosts ? { customHosts } : {}),
    });
    const setBody = (availability, activity, expirationDuration = "PT1H") =>
      ({ sessionId: APP_ID, availability, activity, expirationDuration });

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

    it("serves https and prints the self-signed certificate it uses, the one Node trusts", async () => {
      assert.match(server.rootUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(realpathSync(server.certificatePath), realpathSync(path.join(server.dataDir, SELF_SIGNED_CERT)),
        "the certificate line names the certificate in the data dir");
      assert.equal(readFileSync(server.certificatePath, "utf8"), readFileSync(EXTRA_CA, "utf8"),
        "a certificate already in the data dir is kept, not replaced");

      const cert = new X509Certificate(readFileSync(server.certificatePath));
      const sans = (cert.subjectAltName ?? "").split(", ");
      for (const san of ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"]) {
        assert.ok(sans.includes(san), `certificate SANs ${JSON.stringify(sans)} lack ${san}`);
      }
      assert.ok(cert.checkIssued(cert), "self-signed");
    });

    it("negotiates h2 or http/1.1 by ALPN, with the trusted certificate", async () => {
      const both = await handshake(server.port, ["h2", "http/1.1"]);
      assert.equal(both.alpn, "h2", "h2 is preferred when offered");
      assert.equal(both.cert.fingerprint256, new X509Certificate(readFileSync(EXTRA_CA)).fingerprint256);
      const h1 = await handshake(server.port, ["http/1.1"]);
      assert.equal(h1.alpn, "http/1.1");
    });

    it("setPresence and GET presence with the stock client", async () => {
      const user = randomUUID();
      const me = stockClient(server.delegated(user));
      await me.api("/me/presence/setPresence").post(setBody("Busy", "InACall"));

      const p = await me.api("/me/presence").get();
      assert.equal(p.id, user);
      assert.deepEqual([p.availability, p.activity], ["Busy", "InACall"]);
      assert.match(p["@odata.context"] ?? "", /\/v1\.0\/\$metadata#/);

      const app = stockClient(server.application());
      const viaUsers = await app.api(`/users/${user}/presence`).get();
      assert.deepEqual([viaUsers.availability, viaUsers.activity], ["Busy", "InACall"]);
      const viaBeta = await app.api(`/communications/presences/${user}`).version("beta").get();
      assert.deepEqual([viaBeta.availability, viaBeta.activity], ["Busy", "InACall"]);
      const batch = await app.api("/communications/getPresencesByUserId").post({ ids: [user] });
      assert.deepEqual(batch.value.map((x) => [x.id, x.availability]), [[user, "Busy"]]);

      await me.api("/me/presence/clearPresence").post({ sessionId: APP_ID });
      const cleared = await me.api("/me/presence").get();
      assert.deepEqual([cleared.availability, cleared.activity], ["Offline", "Offline"]);
    });

    it("without customHosts the stock client sends no token to 127.0.0.1 (401)", async () => {
      const anonymous = stockClient(server.delegated(randomUUID()), { customHosts: null });
      const err = await graphError(anonymous.api("/me/presence").get());
      assert.equal(err.statusCode, 401);
      assert.equal(err.code, "InvalidAuthenticationToken");
    });

    it("subscription create, notification and delete with the stock client", async () => {
      const [subscriber, watched] = [randomUUID(), randomUUID()];
      const client = stockClient(server.delegated(subscriber));
      const url = receiver.endpoint(); // http on loopback: allowed in emulator mode
      const resource = `/communications/presences/${watched}`;
      const expiry = new Date(new Date(await server.clockNow()).getTime() + 50 * MINUTE).toISOString();

      const created = await client.api("/subscriptions").post({
        changeType: "updated", notificationUrl: url, resource, expirationDateTime: expiry, clientState: "tls-state",
      });
      assert.equal(created.resource, resource);
      assert.equal(created.notificationUrl, url);
      assert.equal(created.creatorId, subscriber);
      assert.equal(receiver.validationsFor(url).length, 1, "one validation handshake");

      await stockClient(server.delegated(watched)).api("/me/presence/setPresence").post(setBody("DoNotDisturb", "Presenting"));
      const { item } = await receiver.waitForItem(url,
        (i) => i.subscriptionId === created.id && i.resourceData?.id === watched, "for the watched user's setPresence");
      assert.equal(item.clientState, "tls-state");
      assert.equal(item.changeType, "updated");

      await client.api(`/subscriptions/${created.id}`).delete();
      const gone = await graphError(client.api(`/subscriptions/${created.id}`).get());
      assert.equal(gone.statusCode, 404);
    });
  });
}
