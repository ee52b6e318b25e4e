// Starts a real presenced process for a test file and builds official Graph
// JavaScript clients aimed at it. WebhookReceiver is a notification endpoint
// on 127.0.0.1 for the subscription tests. `new Presenced({ tls: true })`
// serves https with presenced's self-signed certificate (--tls-self-signed).

import { spawn, execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync, openSync, closeSync, accessSync, copyFileSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

import graph from "@microsoft/microsoft-graph-client";

const { Client, HTTPMessageHandler, RetryHandler, RetryHandlerOptions } = graph;

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "..", "..", "..");
export const TENANT = "5b8e2f61-3c4d-4e7a-9f10-2a6b7c8d9e02";
export const APP_ID = "0d6f4a2b-7e91-4c3a-8b5d-6e2f1a9c7b45";
export const START_TIME = "2026-01-01T09:00:00Z";
export const DELEGATED_SCOPES = "Presence.ReadWrite Presence.Read.All";
export const APP_ROLES = "Presence.ReadWrite.All Presence.Read.All Presenced.Admin";
const LISTEN_LINE = /^presenced listening on (https?:\/\/127\.0\.0\.1:(\d+))$/;
const CERT_LINE = /^presenced TLS certificate \(self-signed\): (.+)$/;
/** File names of --tls-self-signed's certificate and key in the data dir. */
export const SELF_SIGNED_CERT = "tls-self-signed.cert.pem";
export const SELF_SIGNED_KEY = "tls-self-signed.key.pem";
const STARTUP_TIMEOUT_MS = 30_000;

export function presencedBinary() {
  const raw = process.env.PRESENCED_BIN;
  const bin = raw ? path.resolve(process.cwd(), raw) : path.join(REPO, "target", "debug", "presenced");
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`presenced binary not found or not executable: ${bin} ` +
      "(build it with `cargo build --bin presenced` or set PRESENCED_BIN)");
  }
  return bin;
}

/**
 * The Graph JS client only attaches bearer tokens to https Graph hosts
 * (AuthenticationHandler checks the scheme), so over plain http we put the
 * Authorization header on ourselves as the first link of a custom chain.
 */
class BearerTokenMiddleware {
  constructor(token) {
    this.token = token;
    this.nextMiddleware = undefined;
  }

  async execute(context) {
    const value = `Bearer ${this.token}`;
    context.options = context.options ?? {};
    const headers = context.options.headers;
    if (headers instanceof Headers) {
      headers.set("Authorization", value);
    } else {
      context.options.headers = { ...(headers ?? {}), Authorization: value };
    }
    return this.nextMiddleware.execute(context);
  }

  setNext(next) {
    this.nextMiddleware = next;
  }
}

export class Presenced {
  /**
   * `tls`: serve https with --tls-self-signed; start() then also reads the
   * certificate line into `certificatePath`. `certificateFrom`: a data dir
   * holding a self-signed certificate and key made earlier; both are copied
   * into this server's fresh data dir first, so presenced keeps using that
   * certificate (the one NODE_EXTRA_CA_CERTS names) instead of making one.
   */
  constructor({ tls = false, certificateFrom, extraArgs = [] } = {}) {
    this.tls = tls;
    this.extraArgs = extraArgs;
    this.bin = presencedBinary();
    this.dir = mkdtempSync(path.join(tmpdir(), "presenced-sdk-js-"));
    this.secretFile = path.join(this.dir, "jwt-secret");
    writeFileSync(this.secretFile, randomBytes(36).toString("base64url"));
    this.dataDir = path.join(this.dir, "data");
    mkdirSync(this.dataDir, { mode: 0o700 });
    if (certificateFrom) {
      for (const name of [SELF_SIGNED_CERT, SELF_SIGNED_KEY]) {
        copyFileSync(path.join(certificateFrom, name), path.join(this.dataDir, name));
      }
    }
    this.certificatePath = undefined;
    this.stderrPath = path.join(this.dir, "presenced.stderr.log");
    this.tokens = new Map();
    this.rootUrl = "";
    this.proc = undefined;
  }

  async start() {
    const errFd = openSync(this.stderrPath, "w");
    this.proc = spawn(this.bin, [
      "serve",
      "--listen", "127.0.0.1:0",
      "--data-dir", this.dataDir,
      "--jwt-secret-file", this.secretFile,
      "--manual-clock",
      "--start-time", START_TIME,
      ...(this.tls ? ["--tls-self-signed"] : []),
      ...this.extraArgs,
    ], { stdio: ["ignore", "pipe", errFd] });
    closeSync(errFd);
    this.exited = new Promise((resolve) => this.proc.once("exit", (code, signal) => resolve({ code, signal })));

    // Every stdout line is queued (and stdout keeps draining, so the process
    // never blocks on a full pipe); startup reads the first one or two.
    const queued = [];
    let wake = () => {};
    const lines = createInterface({ input: this.proc.stdout });
    lines.on("line", (line) => { queued.push(line); wake(); });
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    const nextLine = (what) => new Promise((resolve, reject) => {
      const settle = () => {
        if (queued.length > 0) {
          clearTimeout(timer);
          this.proc.off("exit", onExit);
          wake = () => {};
          resolve(queued.shift());
        }
      };
      const onExit = (code) => {
        clearTimeout(timer);
        reject(new Error(`presenced exited (${code}) before printing ${what}\n${this.stderrTail()}`));
      };
      const timer = setTimeout(() => {
        this.proc.off("exit", onExit);
        reject(new Error(`presenced printed no ${what} within ${STARTUP_TIMEOUT_MS} ms\n${this.stderrTail()}`));
      }, Math.max(0, deadline - Date.now()));
      wake = settle;
      this.proc.once("exit", onExit);
      settle();
    });
    const fail = async (message) => {
      await this.stop();
      throw new Error(`${message}\n${this.stderrTail()}`);
    };

    const first = await nextLine("listening line");
    const m = LISTEN_LINE.exec(first.trim());
    if (!m || m[1].startsWith("https:") !== this.tls) {
      await fail(`unexpected first stdout line from presenced: ${JSON.stringify(first)}`);
    }
    this.rootUrl = m[1];
    this.port = Number(m[2]);
    if (this.tls) {
      const second = await nextLine("certificate line");
      const c = CERT_LINE.exec(second.trim());
      if (!c) await fail(`unexpected second stdout line from presenced: ${JSON.stringify(second)}`);
      this.certificatePath = c[1];
    }
  }

  /** SIGTERM and wait; returns a description of the problem when the stop was not graceful. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) {
      return this.proc && this.proc.exitCode !== 0 ? `presenced had already exited with ${this.proc.exitCode}` : undefined;
    }
    this.proc.kill("SIGTERM");
    const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 15_000).unref());
    const res = await Promise.race([this.exited, timeout]);
    if (res === "timeout") {
      this.proc.kill("SIGKILL");
      await this.exited;
      return "presenced did not exit within 15 s of SIGTERM";
    }
    return res.code === 0 ? undefined : `presenced exited with ${res.code ?? res.signal} after SIGTERM`;
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }

  stderrTail(n = 40) {
    try {
      return "presenced stderr (tail):\n" + readFileSync(this.stderrPath, "utf8").split("\n").slice(-n).join("\n");
    } catch {
      return "(no stderr log)";
    }
  }

  token({ user, scopes, roles, app = APP_ID, tenant = TENANT } = {}) {
    const key = JSON.stringify([user, scopes, roles, app, tenant]);
    if (!this.tokens.has(key)) {
      const args = ["token", "--jwt-secret-file", this.secretFile, "--tenant", tenant, "--app", app];
      if (user) args.push("--user", user);
      if (scopes) args.push("--scopes", scopes);
      if (roles) args.push("--roles", roles);
      const out = execFileSync(this.bin, args, { encoding: "utf8", timeout: 30_000 }).trim();
      if (out.split(".").length !== 3) throw new Error(`presenced token did not print a JWT: ${JSON.stringify(out)}`);
      this.tokens.set(key, out);
    }
    return this.tokens.get(key);
  }

  delegated(user, scopes = DELEGATED_SCOPES) {
    return this.token({ user, scopes });
  }

  application(roles = APP_ROLES) {
    return this.token({ roles });
  }

  /** An official Graph client over plain http, with a custom middleware chain. */
  graph(token, version = "v1.0") {
    return Client.initWithMiddleware({
      middleware: [new BearerTokenMiddleware(token), new RetryHandler(new RetryHandlerOptions()), new HTTPMessageHandler()],
      baseUrl: this.rootUrl,
      defaultVersion: version,
    });
  }

  // -- emulator endpoints: plain HTTP, not Graph ---------------------------------
  async admin(method, urlPath, body) {
    const res = await fetch(this.rootUrl + urlPath, {
      method,
      headers: {
        Authorization: `Bearer ${this.application()}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${urlPath} ${JSON.stringify(body)} -> ${res.status}: ${text}`);
    return text.trim() ? JSON.parse(text) : undefined;
  }

  async clockNow() {
    return (await this.admin("GET", "/_presenced/clock")).now;
  }

  async advance(duration) {
    return (await this.admin("POST", "/_presenced/clock", { advance: duration })).now;
  }

  async putClientSession(user, name, availability, activity, expirationDuration) {
    const body = { availability, activity };
    if (expirationDuration) body.expirationDuration = expirationDuration;
    await this.admin("PUT", `/_presenced/users/${user}/clientSessions/${name}`, body);
  }

  async deleteClientSession(user, name) {
    await this.admin("DELETE", `/_presenced/users/${user}/clientSessions/${name}`);
  }
}

// How WebhookReceiver answers, chosen by the first path segment of the URL.
export const ECHO = "hooks"; // validation: 200 text/plain with the token; notifications: 202
export const WRONG_ECHO = "wrong-echo"; // validation: 200 with some other text
export const REFUSE = "refuse"; // validation: 403

/**
 * A real notification endpoint on 127.0.0.1 (node:http). Answers Graph's
 * validation handshake (SPEC §7: POST ?validationToken=…, 200 text/plain with
 * the decoded token as the whole body) and records every notification POST.
 * Each test uses its own path (endpoint()), so tests never see each other's
 * traffic.
 */
export class WebhookReceiver {
  constructor() {
    this.validations = [];
    this.notifications = [];
    this.listeners = new Set();
    this.baseUrl = "";
  }

  async start() {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const url = new URL(req.url, "http://127.0.0.1");
        const got = {
          method: req.method,
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        };
        const mode = url.pathname.split("/")[1];
        if (req.method === "POST" && url.searchParams.has("validationToken")) {
          this.validations.push(got);
          if (mode === REFUSE) {
            res.writeHead(403).end();
          } else if (mode === WRONG_ECHO) {
            res.writeHead(200, { "Content-Type": "text/plain" }).end("not the token");
          } else {
            res.writeHead(200, { "Content-Type": "text/plain" }).end(url.searchParams.get("validationToken"));
          }
          return;
        }
        this.notifications.push(got);
        res.writeHead(202).end();
        for (const listener of this.listeners) listener();
      });
    });
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    this.baseUrl = `http://127.0.0.1:${this.server.address().port}`;
  }

  async close() {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** A fresh notification URL on this receiver; `query` is kept as given. */
  endpoint(mode = ECHO, query = "") {
    const url = `${this.baseUrl}/${mode}/${randomUUID()}`;
    return query ? `${url}?${query}` : url;
  }

  validationsFor(url) {
    const path = new URL(url).pathname;
    return this.validations.filter((r) => r.path === path);
  }

  notificationsFor(url) {
    const path = new URL(url).pathname;
    return this.notifications.filter((r) => r.path === path);
  }

  /**
   * The first notification item POSTed to `url` that `match`es, as
   * `{ post, body, item }`, waiting up to `timeoutMs`; the first `skipPosts`
   * POSTs to `url` are ignored. Rejects naming `what` and listing what arrived.
   */
  waitForItem(url, match, what, { timeoutMs = 10_000, skipPosts = 0 } = {}) {
    const path = new URL(url).pathname;
    const find = () => {
      for (const post of this.notificationsFor(url).slice(skipPosts)) {
        let body;
        try {
          body = JSON.parse(post.body);
        } catch {
          continue;
        }
        const item = (body.value ?? []).find(match);
        if (item) return { post, body, item };
      }
      return undefined;
    };
    return new Promise((resolve, reject) => {
      const found = find();
      if (found) {
        resolve(found);
        return;
      }
      const listener = () => {
        const hit = find();
        if (hit) {
          clearTimeout(timer);
          this.listeners.delete(listener);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        const seen = this.notificationsFor(url).map((r) => r.body);
        reject(new Error(`no notification ${what} reached ${path} within ${timeoutMs} ms; ` +
          `${seen.length} POST(s) arrived there: ${JSON.stringify(seen)}`));
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }
}
