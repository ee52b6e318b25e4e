// The dashboard: the tenant's roster from GET /_presenced/users, kept live
// by GET /_presenced/events; a user's detail from
// GET /_presenced/users/{id}/presence; in emulator mode, the clock and
// simulated Teams client sessions.

import { Api, ApiError, forgetToken, keepToken, takeToken } from "./api.js";
import { EventStream } from "./sse.js";
import { ago, badge, el, locationText, statusText, tone, when, words } from "./view.js";

/** The most rows drawn at once; search or filter narrows the rest. */
const MAX_ROWS = 500;
/** The most timeline entries kept per user. */
const MAX_TIMELINE = 100;
/** Availabilities in roster order. */
const RANK = ["Available", "AvailableIdle", "Busy", "BusyIdle", "DoNotDisturb", "BeRightBack", "Away", "Offline", "PresenceUnknown"];
/** What a simulated Teams client may report (SPEC §8, emulator mode). */
const CLIENT_PAIRS = [
  ["Available", "Available"],
  ["Busy", "InACall"],
  ["Busy", "InAConferenceCall"],
  ["Busy", "InAMeeting"],
  ["Busy", "Busy"],
  ["DoNotDisturb", "Presenting"],
  ["DoNotDisturb", "DoNotDisturb"],
  ["DoNotDisturb", "UrgentInterruptionsOnly"],
  ["BeRightBack", "BeRightBack"],
  ["Away", "Away"],
  ["Away", "OutOfOffice"],
];

const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  /** id → {id, presence, lastSeen, sessionCount} */
  users: new Map(),
  /** id → <tr> */
  rows: new Map(),
  /** id → [{seq, presence, seenAt}] newest last */
  timelines: new Map(),
  stream: null,
  detailStream: null,
  selected: null,
  emulator: false,
  /** Server clock minus this browser's (the emulator clock may differ). */
  offsetMs: 0,
  /** Events that arrived while the roster was loading. */
  pending: null,
  refreshing: new Set(),
  refreshQueue: [],
};

function serverNow() {
  return Date.now() + state.offsetMs;
}

function learnNow(instant) {
  const t = Date.parse(instant);
  if (!Number.isNaN(t)) state.offsetMs = t - Date.now();
}

// ---------- messages and connection state

function showError(message) {
  const banner = $("banner");
  banner.textContent = message;
  banner.hidden = false;
}

function clearError() {
  $("banner").hidden = true;
}

function setLive(kind, text) {
  const live = $("live");
  live.dataset.state = kind;
  live.textContent = text;
}

// ---------- the roster

function matches(user) {
  const wanted = $("filter").value;
  if (wanted && user.presence.availability !== wanted) return false;
  const query = $("search").value.trim().toLowerCase();
  if (!query) return true;
  const p = user.presence;
  return [user.id, p.availability, words(p.availability), p.activity, words(p.activity), statusText(p), locationText(p)]
    .some((text) => text && text.toLowerCase().includes(query));
}

function rank(user) {
  const i = RANK.indexOf(user.presence.availability);
  return i < 0 ? RANK.length : i;
}

function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

/** A cell that may be empty: "—", and left out of the phone card. */
function optional(label, text, className = "") {
  return el("td", { "data-label": label, className: text ? "" : "blank" },
    el("span", { className: text ? className : "muted", text: text || "—" }));
}

function buildRow(user) {
  const p = user.presence;
  const message = statusText(p);
  const location = locationText(p);
  const sessions = user.sessionCount === null || user.sessionCount === undefined
    ? null
    : el("span", { className: "sub", text: `${user.sessionCount} session${user.sessionCount === 1 ? "" : "s"}` });
  const row = el(
    "tr",
    {
      tabindex: "0",
      className: state.selected === user.id ? "selected" : null,
      dataset: { id: user.id, tone: tone(p.availability) },
    },
    cell("User", el("div", { className: "user" },
      el("span", { className: "avatar", "aria-hidden": "true", text: user.id.slice(0, 2).toUpperCase() }),
      el("span", { className: "who" }, el("span", { className: "mono id", title: user.id, text: user.id }), sessions))),
    cell("Availability", badge(p.availability)),
    cell("Activity", el("span", { text: words(p.activity) })),
    optional("Status message", message, "message"),
    optional("Work location", location),
    cell("Last seen", el("span", { className: "seen", title: when(user.lastSeen), text: ago(user.lastSeen, serverNow()) })),
  );
  return row;
}

function renderRow(id, flash) {
  const user = state.users.get(id);
  const old = state.rows.get(id);
  const row = buildRow(user);
  state.rows.set(id, row);
  if (old && old.parentNode) {
    old.replaceWith(row);
    if (flash) {
      row.classList.add("flash");
      row.addEventListener("animationend", () => row.classList.remove("flash"), { once: true });
    }
    placeRow(row, user);
  } else {
    renderRoster();
  }
}

/** Moves an updated row to its place in the order, without redrawing. */
function placeRow(row, user) {
  if (!matches(user)) {
    row.remove();
    updateCount();
    return;
  }
  const tbody = $("rows");
  const before = [...tbody.children].find((other) => other !== row && compare(user, state.users.get(other.dataset.id)) < 0);
  if (before) {
    if (row.nextSibling !== before) tbody.insertBefore(row, before);
  } else if (tbody.lastChild !== row) {
    tbody.append(row);
  }
}

function compare(a, b) {
  return rank(a) - rank(b) || a.id.localeCompare(b.id);
}

function renderRoster() {
  const shown = [...state.users.values()].filter(matches).sort(compare);
  const tbody = $("rows");
  const rows = shown.slice(0, MAX_ROWS).map((user) => {
    let row = state.rows.get(user.id);
    if (!row) {
      row = buildRow(user);
      state.rows.set(user.id, row);
    }
    return row;
  });
  tbody.replaceChildren(...rows);
  updateCount(shown.length);
}

function updateCount(shownCount) {
  const total = state.users.size;
  const shown = shownCount ?? $("rows").children.length;
  const drawn = Math.min(shown, MAX_ROWS);
  $("count").textContent = shown === total
    ? `${total} user${total === 1 ? "" : "s"}`
    : `${shown} of ${total} users`;
  if (shown > drawn) $("count").textContent += ` (first ${drawn} shown)`;
  $("empty").hidden = total > 0;
}

function refreshAges() {
  for (const [id, row] of state.rows) {
    const user = state.users.get(id);
    const seen = row.querySelector(".seen");
    if (user && seen) seen.textContent = ago(user.lastSeen, serverNow());
  }
}

async function loadRoster() {
  try {
    const items = await state.api.all("/_presenced/users?$top=200");
    for (const item of items) {
      state.users.set(item.id, {
        id: item.id,
        presence: item.presence,
        lastSeen: item.lastSeenDateTime ?? null,
        sessionCount: item.sessionCount ?? null,
      });
      state.rows.delete(item.id);
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && e.code !== "invalidRequest") {
      showError("This server does not list its users (GET /_presenced/users): users appear as their presence changes.");
    } else if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      showError(`The roster cannot be read: ${e.message}`);
    } else {
      showError(`The roster could not be loaded: ${e.message}`);
    }
  }
  renderRoster();
}

// ---------- the event stream

function onPresenceEvent(event, fromDetail) {
  let presence;
  try {
    presence = JSON.parse(event.data);
  } catch {
    return;
  }
  if (!presence || typeof presence.id !== "string") return;
  const seq = Number(event.id);
  remember(presence.id, seq, presence, fromDetail ? null : new Date());
  if (fromDetail) {
    renderTimeline();
    return;
  }
  const known = state.users.get(presence.id);
  if (known) {
    known.presence = presence;
  } else {
    state.users.set(presence.id, { id: presence.id, presence, lastSeen: null, sessionCount: null });
  }
  renderRow(presence.id, true);
  refreshSoon(presence.id);
  if (state.selected === presence.id) {
    renderDetailSummary();
    renderTimeline();
  }
}

/** Adds a change to a user's timeline, once per event id. */
function remember(id, seq, presence, seenAt) {
  const list = state.timelines.get(id) || [];
  const same = list.find((entry) => entry.seq === seq);
  if (same) {
    if (seenAt && !same.seenAt) same.seenAt = seenAt;
    return;
  }
  list.push({ seq, presence, seenAt });
  list.sort((a, b) => a.seq - b.seq);
  if (list.length > MAX_TIMELINE) list.splice(0, list.length - MAX_TIMELINE);
  state.timelines.set(id, list);
}

function handleEvent(event) {
  if (state.pending) {
    state.pending.push(event);
    return;
  }
  if (event.event === "presence") onPresenceEvent(event, false);
  else if (event.event === "reset") {
    // Too far behind the retained log: re-read everything, then follow.
    state.pending = [];
    loadRoster().then(drainPending);
  }
}

function drainPending() {
  const events = state.pending || [];
  state.pending = null;
  for (const event of events) handleEvent(event);
}

function startStream(token) {
  return new Promise((connected) => {
    state.stream = new EventStream({
      path: "/_presenced/events",
      token,
      onEvent: handleEvent,
      onState: (kind, detail) => {
        if (kind === "live") {
          setLive("live", "Live");
          connected(true);
        } else if (kind === "connecting") {
          setLive("connecting", "Connecting…");
        } else {
          setLive("retrying", "Reconnecting…");
          if (detail) console.warn("event stream:", detail);
          // The roster does not wait for a stream that cannot connect yet
          // (a 5xx, a 429, a network error): it keeps retrying behind it.
          connected(false);
        }
      },
      onFatal: (status, message) => {
        setLive("off", "Not live");
        showError(`Live updates are off: ${message}`);
        connected(false);
      },
    }).start();
  });
}

/** Re-reads a changed user's last-seen time and session count, a few at a
 * time (the event carries the presence only). */
function refreshSoon(id) {
  if (state.refreshing.has(id) || state.refreshQueue.length > 200) return;
  state.refreshing.add(id);
  state.refreshQueue.push(id);
  pump();
}

let pumping = 0;
async function pump() {
  if (pumping >= 2) return;
  pumping += 1;
  try {
    while (state.refreshQueue.length > 0) {
      const id = state.refreshQueue.shift();
      state.refreshing.delete(id);
      try {
        const explained = await state.api.get(`/_presenced/users/${encodeURIComponent(id)}/presence`);
        const user = state.users.get(id);
        if (user) {
          user.lastSeen = explained.lastSeenDateTime ?? null;
          user.sessionCount = explained.sessions.length;
          learnNow(explained.now);
          renderRow(id, false);
        }
      } catch {
        // A failed refresh leaves the row as the event left it.
      }
    }
  } finally {
    pumping -= 1;
  }
}

// ---------- a user's detail

async function openDetail(id) {
  state.selected = id;
  $("detail").hidden = false;
  document.body.classList.add("detail-open");
  $("detail-title").textContent = id;
  for (const row of state.rows.values()) row.classList.toggle("selected", row.dataset.id === id);
  renderDetailSummary();
  renderTimeline();
  $("simulate").hidden = !state.emulator;
  if (state.detailStream) state.detailStream.stop();
  state.detailStream = null;
  await loadDetail();
  // Closed, or another user opened, while the detail loaded: that one
  // owns the panel (and its stream) now.
  if (state.selected !== id) return;
  // The event log can replay what it retains: a stream of this user's
  // changes from the start of the log fills the timeline with changes from
  // before the page opened, then follows.
  state.detailStream = new EventStream({
    path: `/_presenced/events?ids=${encodeURIComponent(id)}`,
    token: state.api.token,
    lastEventId: "0",
    onEvent: (event) => {
      if (event.event === "presence" && state.selected === id) onPresenceEvent(event, true);
    },
  }).start();
}

function closeDetail() {
  state.selected = null;
  $("detail").hidden = true;
  document.body.classList.remove("detail-open");
  if (state.detailStream) state.detailStream.stop();
  state.detailStream = null;
  for (const row of state.rows.values()) row.classList.remove("selected");
}

function renderDetailSummary() {
  const user = state.users.get(state.selected);
  const summary = $("detail-summary");
  const status = $("detail-status");
  if (!user) {
    summary.replaceChildren();
    status.replaceChildren();
    return;
  }
  const p = user.presence;
  summary.replaceChildren(badge(p.availability), el("span", { className: "activity", text: words(p.activity) }));
  const parts = [];
  const message = statusText(p);
  if (message) parts.push(el("p", { className: "message-box", text: message }));
  const location = locationText(p);
  if (location) parts.push(el("p", { className: "muted", text: `Work location: ${location}` }));
  parts.push(el("p", { className: "muted", text: `Last seen ${ago(user.lastSeen, serverNow())}` }));
  status.replaceChildren(...parts);
}

async function loadDetail() {
  const id = state.selected;
  if (!id) return;
  let explained;
  try {
    explained = await state.api.get(`/_presenced/users/${encodeURIComponent(id)}/presence`);
  } catch (e) {
    showError(`The sessions of ${id} could not be read: ${e.message}`);
    return;
  }
  if (state.selected !== id) return;
  learnNow(explained.now);
  const user = state.users.get(id);
  if (user) {
    // The explanation is the Graph resource with more fields beside it.
    const { sessions, preferredPresence, lastSeenDateTime, now, ...presence } = explained;
    user.presence = presence;
    user.lastSeen = explained.lastSeenDateTime ?? null;
    user.sessionCount = explained.sessions.length;
    renderRow(id, false);
  }
  renderDetailSummary();
  const preferred = explained.preferredPresence;
  $("detail-preferred").replaceChildren(
    ...(preferred
      ? [el("span", { className: "muted", text: "Preferred presence: " }), badge(preferred.availability),
        el("span", { text: ` ${words(preferred.activity)} until ${when(preferred.expirationDateTime)}` })]
      : []),
  );
  const rows = explained.sessions.map((s) => {
    const end = state.emulator && s.kind === "client"
      ? el("button", { type: "button", className: "ghost small", dataset: { end: s.id }, text: "End" })
      : null;
    return el(
      "tr",
      {},
      el("td", { "data-label": "Session" }, el("span", { className: "kind", text: s.kind === "client" ? "Teams client" : "App" }),
        el("span", { className: "mono sub", title: s.id, text: s.id })),
      el("td", { "data-label": "Now" }, badge(s.availability), el("span", { className: "sub", text: words(s.activity) }),
        // What the session reported, when time has since changed it (idle, away).
        s.reportedAvailability !== s.availability || s.reportedActivity !== s.activity
          ? el("span", { className: "sub", text: `reported ${words(s.reportedAvailability)} / ${words(s.reportedActivity)}` })
          : null),
      el("td", { "data-label": "Expires", title: when(s.expirationDateTime), text: ago(s.expirationDateTime, serverNow()) }),
      el("td", {}, end),
    );
  });
  $("detail-sessions").replaceChildren(...rows);
  $("detail-no-sessions").hidden = rows.length > 0;
}

function renderTimeline() {
  const id = state.selected;
  const list = (id && state.timelines.get(id)) || [];
  const items = [...list].reverse().map((entry) => {
    const p = entry.presence;
    const message = statusText(p);
    return el(
      "li",
      { dataset: { tone: tone(p.availability) } },
      el("span", { className: "when", text: entry.seenAt ? entry.seenAt.toLocaleTimeString() : "earlier" }),
      badge(p.availability),
      el("span", { text: words(p.activity) }),
      message ? el("span", { className: "message", text: `“${message}”` }) : null,
      el("span", { className: "seq mono", text: `#${entry.seq}` }),
    );
  });
  $("timeline").replaceChildren(...items);
  $("timeline-note").textContent = items.length
    ? "Times are when this page saw the change; “earlier” ones were replayed from the server's event log."
    : "No changes seen yet.";
}

// ---------- emulator mode

async function detectEmulator() {
  try {
    const clock = await state.api.get("/_presenced/clock");
    state.emulator = true;
    learnNow(clock.now);
    showClock(clock.now);
    $("emulator").hidden = false;
  } catch (e) {
    // 404: not an emulator; 403: not an admin token. Either way, no tools.
    state.emulator = false;
    if (e instanceof ApiError && e.status === 401) throw e;
  }
}

function showClock(now) {
  $("emulator-now").textContent = when(now);
  $("emulator-now").title = now;
}

async function advance(duration) {
  try {
    const clock = await state.api.post("/_presenced/clock", { advance: duration });
    learnNow(clock.now);
    showClock(clock.now);
    clearError();
    refreshAges();
    if (state.selected) await loadDetail();
  } catch (e) {
    showError(`The clock did not move: ${e.message}`);
  }
}

async function simulate(event) {
  event.preventDefault();
  const id = state.selected;
  const name = $("sim-name").value.trim();
  const [availability, activity] = $("sim-pair").value.split("/");
  try {
    await state.api.put(`/_presenced/users/${encodeURIComponent(id)}/clientSessions/${encodeURIComponent(name)}`, {
      availability,
      activity,
      expirationDuration: $("sim-duration").value,
    });
    clearError();
    await loadDetail();
  } catch (e) {
    showError(`The client session was not started: ${e.message}`);
  }
}

async function endSession(name) {
  const id = state.selected;
  try {
    await state.api.delete(`/_presenced/users/${encodeURIComponent(id)}/clientSessions/${encodeURIComponent(name)}`);
    clearError();
    await loadDetail();
  } catch (e) {
    showError(`The client session was not ended: ${e.message}`);
  }
}

// ---------- start

async function connect(token) {
  state.api = new Api(token);
  $("connect").hidden = true;
  $("roster-card").hidden = false;
  $("forget").hidden = false;
  try {
    await detectEmulator();
  } catch (e) {
    showError(`The server refused the token: ${e.message}`);
    showConnect();
    return;
  }
  // Follow the stream first and hold its events until the roster is read:
  // no change between the two can be missed.
  state.pending = [];
  await startStream(token);
  await loadRoster();
  drainPending();
  setInterval(refreshAges, 30000);
}

function showConnect() {
  if (state.stream) state.stream.stop();
  $("connect").hidden = false;
  $("roster-card").hidden = true;
  $("emulator").hidden = true;
  $("forget").hidden = true;
  setLive("off", "Not connected");
}

function wire() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    keepToken(token);
    $("token-input").value = "";
    clearError();
    connect(token);
  });
  $("forget").addEventListener("click", () => {
    forgetToken();
    location.reload();
  });
  $("search").addEventListener("input", renderRoster);
  $("filter").addEventListener("change", renderRoster);
  $("rows").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-id]");
    if (row) openDetail(row.dataset.id);
  });
  $("rows").addEventListener("keydown", (event) => {
    const row = event.target.closest("tr[data-id]");
    if (row && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      openDetail(row.dataset.id);
    }
  });
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.selected) closeDetail();
  });
  for (const button of document.querySelectorAll("[data-advance]")) {
    button.addEventListener("click", () => advance(button.dataset.advance));
  }
  $("sim-pair").replaceChildren(
    ...CLIENT_PAIRS.map(([a, b]) => el("option", { value: `${a}/${b}`, text: `${words(a)} · ${words(b)}` })),
  );
  $("simulate").addEventListener("submit", simulate);
  $("detail-sessions").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-end]");
    if (button) endSession(button.dataset.end);
  });
}

wire();
const token = takeToken();
if (token) connect(token);
else showConnect();
