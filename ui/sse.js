// Server-sent events over fetch(): EventSource cannot send an
// Authorization header, so the stream is read with a body reader and
// parsed here (the text/event-stream format of the HTML standard). The
// last event id is kept and sent as Last-Event-ID when reconnecting, so
// no change is missed across a dropped connection.

/** Parses text/event-stream chunks into events. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  /** Feeds decoded text; calls onEvent({event, data, id}) per event. */
  push(text) {
    this.buffer += text;
    let at;
    while ((at = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, at);
      const width = this.buffer.startsWith("\r\n", at) ? 2 : 1;
      // A lone \r at the very end may be the first half of \r\n.
      if (width === 1 && this.buffer[at] === "\r" && at === this.buffer.length - 1) break;
      this.buffer = this.buffer.slice(at + width);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0) {
        this.onEvent({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

/** A followed event stream: reconnects with backoff, resuming from the
 * last event id. `onEvent(event)`, `onState("connecting"|"live"|"retrying",
 * detail)`. `stop()` ends it for good. */
export class EventStream {
  constructor({ path, token, lastEventId = null, onEvent, onState = () => {}, onFatal = () => {} }) {
    this.path = path;
    this.token = token;
    this.lastEventId = lastEventId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onFatal = onFatal;
    this.controller = null;
    this.stopped = false;
    this.retryMs = 1000;
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async run() {
    while (!this.stopped) {
      this.controller = new AbortController();
      this.onState("connecting");
      try {
        const headers = { Authorization: `Bearer ${this.token}`, Accept: "text/event-stream" };
        if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
        const response = await fetch(this.path, {
          headers,
          cache: "no-store",
          signal: this.controller.signal,
        });
        if (!response.ok) {
          let message = `the event stream answered ${response.status}`;
          try {
            const body = await response.json();
            if (body.error && body.error.message) message = body.error.message;
          } catch {
            // not JSON: keep the status
          }
          // Client errors do not heal by retrying (bad token, no permission).
          if (response.status >= 400 && response.status < 500 && response.status !== 429) {
            this.stopped = true;
            this.onFatal(response.status, message);
            return;
          }
          throw new Error(message);
        }
        this.onState("live");
        this.retryMs = 1000;
        const parser = new SseParser((event) => {
          if (event.id !== null) this.lastEventId = event.id;
          this.onEvent(event);
        });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
        if (this.stopped) return;
        this.onState("retrying", "the stream ended");
      } catch (e) {
        if (this.stopped) return;
        this.onState("retrying", e.message || String(e));
      }
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      this.retryMs = Math.min(this.retryMs * 2, 30000);
    }
  }
}
