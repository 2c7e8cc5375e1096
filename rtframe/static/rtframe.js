// rtframe.js: the browser client for rtframe servers. An ES module, no build step.
//
//   import { connect } from "/rtframe/rtframe.js";
//   const rt = connect("/ws/chat/lobby?nick=ada", { on: { said: (msg) => show(msg) } });
//   rt.on("$state", (s) => status.textContent = s.state);
//   rt.send("say", { text: "hello" });
//
// What it does beyond a WebSocket (docs/client.md has the whole story):
// - reconnects with exponential backoff and full jitter, unless the server closed for a
//   reason that a retry cannot fix (logged out, policy, the app's 44xx refusals);
// - answers the server's `$ping`, and takes a server silent for longer than its heartbeat
//   interval + timeout for dead (a half-open TCP connection is otherwise never noticed);
// - keeps the sends made while disconnected in a bounded buffer, sent on reconnect;
// - remembers the last `$pos` of every history group and reconnects with `$since`, so
//   the server replays what was missed (docs/recovery.md), and reconnects by itself to
//   recover after `$dropped`, or when the server announces a restart with `$reconnect`;
// - keeps presence lists from `$presence` frames.
//
// The socket underneath is partysocket's ReconnectingWebSocket (vendored, MIT). It owns
// the WebSocket object and its listeners; this module decides when and where to
// reconnect: partysocket's own delay is set to 0 and the URL it asks for before each
// attempt comes from `_nextUrl`, which waits out this client's backoff and adds `$since`.
import ReconnectingWebSocket from "./vendor/partysocket/ws.js";

/** Close codes after which the client stays closed (unless `shouldReconnect` says so). */
export const FINAL_CLOSE_CODES = Object.freeze([
  1000, // the server closed on purpose (`conn.close()`): reconnecting would undo it
  1003, // the server cannot take the kind of data sent
  1007, // invalid data
  1008, // policy: refused origin, malformed request
  4001, // the session ended: logout, password change (rtframe.django)
]);

const DEFAULTS = {
  backoff: { initial: 500, max: 20000, factor: 2 },
  // the server's Heartbeat defaults (rtframe.timing): a ping every 25 s, 10 s to answer
  heartbeat: { interval: 25, timeout: 10 },
  buffer: { size: 100, overflow: "drop-oldest" },
  connectTimeout: 10000,
  // a connection counts as healthy (the backoff starts over) after this long open
  stableAfter: 5000,
  maxRetries: Infinity,
  recover: true,
};

/** Whether the client should reconnect after the server closed with `code`. */
export function isRetryable(code) {
  if (FINAL_CLOSE_CODES.includes(code)) return false;
  return !(code >= 4400 && code <= 4499); // the app's refusals: 4401 login, 4403, 4404 ...
}

// Plain-English sentences for close codes and error frames, for pages that show them
// as they are; an app with its own words (or languages) maps the codes itself.
const CLOSE_SENTENCES = {
  1000: "The server ended the connection.",
  1001: "The server is going away.",
  1006: "The connection to the server was lost.",
  1008: "The server refused the connection.",
  1009: "A message was too large for the server.",
  1011: "The server ran into an error.",
  1012: "The server is restarting.",
  1013: "The server is busy right now.",
  4001: "You were signed out.",
  4002: "The connection stopped answering.",
  4003: "You were disconnected for being idle.",
  4004: "The server took too long to let you in.",
  4008: "Your connection was too slow to keep up.",
  // 1009/1011/1012/1013 as sent by servers that refuse those codes (daphne): 4000 + (code - 1000)
  4009: "A message was too large for the server.",
  4011: "The server ran into an error.",
  4012: "The server is restarting.",
  4013: "The server is busy right now.",
  4401: "You need to sign in.",
  4403: "You are not allowed here.",
  4404: "There is no such place.",
};
const REASON_SENTENCES = {
  "server silent": "The server stopped answering.",
  "recovering dropped frames": "Catching up on messages you missed.",
  "server restarting": "The server is restarting.",
};
const ERROR_SENTENCES = {
  invalid_json: "The server could not read that message.",
  validation_error: "That message was not accepted.",
  unknown_type: "The server does not know that kind of message.",
  unsupported_frame: "The server does not accept that kind of message.",
  rate_limited: "You are sending too fast: that message was not delivered. Wait a moment.",
  limit_exceeded: "A server limit was reached: that message was not delivered.",
  internal_error: "The server failed to handle that message. Try again.",
  layer_unavailable: "The chat backend is unreachable: only people on this server got it.",
  layer_busy: "The chat backend is busy: only people on this server got it.",
  layer_error: "The chat backend refused it: only people on this server got it.",
};

/** A sentence saying why a connection closed, for a person. */
export function describeClose(code, reason = "") {
  return (
    REASON_SENTENCES[reason] ||
    CLOSE_SENTENCES[code] ||
    (reason ? `Disconnected: ${reason}.` : `Disconnected (code ${code}).`)
  );
}

/** A sentence for an error frame (`{"type": "error", "code", "detail"}`), for a person. */
export function describeError(frame) {
  return ERROR_SENTENCES[frame.code] || frame.detail || "Something went wrong.";
}

/** Open a client to `url` (relative URLs and http(s) schemes are resolved for you). */
export function connect(url, options = {}) {
  return new Client(url, options);
}

export class Client {
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      ...DEFAULTS,
      ...options,
      backoff: { ...DEFAULTS.backoff, ...options.backoff },
      buffer: { ...DEFAULTS.buffer, ...options.buffer },
      heartbeat:
        options.heartbeat === false ? false : { ...DEFAULTS.heartbeat, ...options.heartbeat },
    };
    const { size, overflow } = this.options.buffer;
    if (overflow !== "drop-oldest" && overflow !== "reject") {
      throw new TypeError(`buffer.overflow must be "drop-oldest" or "reject", not ${overflow}`);
    }
    if (!Number.isInteger(size) || size < 0) {
      throw new TypeError(`buffer.size must be a whole number >= 0, not ${size}`);
    }
    this.state = "connecting";
    this.attempt = 0; // failed or ended connections since the last healthy one
    this.stats = { reconnects: 0, overflowed: 0, invalidFrames: 0 };
    this._handlers = new Map();
    this._positions = new Map(); // group -> {epoch, offset}: every frame up to it arrived
    this._ahead = new Map(); // group -> offsets that arrived past a gap
    this._presence = new Map(); // group -> Map(id -> entry)
    this._buffer = [];
    this._closeInfo = null; // why the client itself is closing the socket
    this._restartAt = 0; // when the server said it would close us ($reconnect)
    this._timers = {};
    this._wake = null;
    for (const [type, fn] of Object.entries(options.on || {})) this.on(type, fn);

    this._ws = new ReconnectingWebSocket(() => this._nextUrl(), undefined, {
      minReconnectionDelay: 0, // the delay is ours (`_nextUrl`), with jitter
      maxReconnectionDelay: 0,
      reconnectionDelayGrowFactor: 1,
      connectionTimeout: this.options.connectTimeout,
      maxEnqueuedMessages: 0, // sends while closed go to our own bounded buffer
      shouldReconnectOnClose: (event) => this._onClose(event),
    });
    this._ws.addEventListener("open", () => this._onOpen());
    this._ws.addEventListener("message", (event) => this._onMessage(event));
    this._onlineListener = () => this._wakeUp();
    globalThis.addEventListener?.("online", this._onlineListener);
  }

  /** Call `fn(msg, client)` for every message of `type`; returns a function that stops it.
   *
   * Types: the app's message types, `"*"` for every app message, rtframe's frames
   * (`$recovery`, `$gap`, `$dropped`, `$reconnect`, `$presence`) and the client's own
   * events (`$state`, `$overflow`, `$invalid`). */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this._handlers.get(type)?.delete(fn);
  }

  /** Send `{type, ...payload}`. Returns "sent", "queued" (sent once reconnected) or
   * "rejected" (the client is closed, or the buffer is full under `overflow: "reject"`). */
  send(type, payload = {}) {
    if (payload.type !== undefined && payload.type !== type) {
      throw new TypeError(`send(${JSON.stringify(type)}, ...): the payload has its own type`);
    }
    return this.sendMessage({ type, ...payload });
  }

  /** Send a whole message object (it must carry its `type`); returns as `send`. */
  sendMessage(message) {
    const text = JSON.stringify(message);
    if (this.state === "closed") {
      console.warn("rtframe: send() on a closed client; the message is not sent", message);
      return "rejected";
    }
    if (this.state === "open" && this._ws.readyState === ReconnectingWebSocket.OPEN) {
      this._ws.send(text);
      return "sent";
    }
    const { size, overflow } = this.options.buffer;
    if (this._buffer.length >= size) {
      this.stats.overflowed += 1;
      if (overflow === "reject" || size === 0) {
        this._emit("$overflow", { policy: overflow, message, total: this.stats.overflowed });
        return "rejected";
      }
      const dropped = JSON.parse(this._buffer.shift());
      this._emit("$overflow", { policy: overflow, message: dropped, total: this.stats.overflowed });
    }
    this._buffer.push(text);
    return "queued";
  }

  /** The last position seen per history group: `{group: {epoch, offset}}`. */
  positions() {
    return Object.fromEntries(this._positions);
  }

  /** Forget the position of `group` (or of every group): the next connection joins it
   * without `$since`, and so gets the group's newest messages (`on_join`) instead. */
  forget(group) {
    if (group === undefined) { this._positions.clear(); this._ahead.clear(); }
    else { this._positions.delete(group); this._ahead.delete(group); }
  }

  /** The members present in `group`, as the last `$presence` frames described them. */
  presence(group) {
    return [...(this._presence.get(group)?.values() || [])];
  }

  /** Replace the members of `group` with `entries` (a list the app sent, read with
   * `group.presence(...)` on the server); later `$presence` frames update it. */
  setPresence(group, entries) {
    this._presence.set(group, new Map(entries.map((entry) => [entry.id, entry])));
  }

  /** Close the socket and connect again now (the backoff starts over). */
  reconnect(reason = "reconnect requested") {
    if (this.state === "closed") {
      this.state = "connecting";
      globalThis.addEventListener?.("online", this._onlineListener);
    }
    this.attempt = 0;
    this._closeInfo = null; // a final close() before this one is over
    this._lastClose = { code: 1000, reason };
    this._restart(reason);
  }

  /** Close for good: no reconnect. */
  close(code = 1000, reason = "closed by the page") {
    if (code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new RangeError(`a page may close with 1000 or 3000-4999, not ${code}`);
    }
    if (this.state === "closed") return;
    this._closeInfo = { final: true, code, reason };
    this._ws.close(code, reason);
    this._wakeUp();
    this._finish(code, reason);
  }

  // -- internals -----------------------------------------------------------------------

  async _nextUrl() {
    // Called by partysocket before every attempt, the first included.
    if (this._connectedOnce || this.attempt > 0) {
      this.stats.reconnects += 1;
      if (this.attempt >= this.options.maxRetries) {
        this._ws.close(1000, "gave up");
        this._finish(1006, `gave up after ${this.attempt} attempts`);
        return this._resolve(); // partysocket sees close() was called and stops
      }
      const delay = this._delay();
      const waited = new Promise((resolve) => {
        this._wake = resolve;
        this._timers.wait = setTimeout(resolve, delay);
      });
      // a handler of this event may already call reconnect() or close(): the wait is set
      this._setState("reconnecting", { attempt: this.attempt, delay, ...this._lastClose });
      await waited;
      clearTimeout(this._timers.wait);
      this._wake = null;
    }
    const url = this._resolve();
    if (this.state !== "closed") this._setState("connecting", { attempt: this.attempt, url });
    return url;
  }

  _delay() {
    // Full jitter: uniform in [0, ceiling), the ceiling doubling per attempt up to `max`.
    // After a `$reconnect` notice the server spread the closes itself: come back soon.
    const { initial, max, factor } = this.options.backoff;
    if (this._restartAt) {
      const early = Math.max(0, this._restartAt - Date.now());
      this._restartAt = 0;
      return early + Math.floor(Math.random() * initial);
    }
    const ceiling = Math.min(max, initial * factor ** Math.max(0, this.attempt - 1));
    return Math.floor(Math.random() * ceiling);
  }

  _resolve() {
    const target = new URL(typeof this.url === "function" ? this.url() : this.url, location.href);
    if (target.protocol === "http:") target.protocol = "ws:";
    else if (target.protocol === "https:") target.protocol = "wss:";
    target.hash = "";
    target.searchParams.delete("$since");
    let href = target.href;
    if (this.options.recover && this._positions.size) {
      const since = encodeURIComponent(JSON.stringify(this.positions()));
      href += `${target.search ? "&" : "?"}$since=${since}`;
    }
    return href;
  }

  _onOpen() {
    this._connectedOnce = true;
    this._closeInfo = null;
    this._lastHeard = Date.now();
    this._probed = false;
    this._presence.clear(); // rebuilt from what the app sends after the join (docs/client.md)
    clearTimeout(this._timers.stable);
    this._timers.stable = setTimeout(() => (this.attempt = 0), this.options.stableAfter);
    this._watchHeartbeat();
    this.state = "open";
    // what was sent while disconnected goes first, in order
    const pending = this._buffer;
    this._buffer = [];
    for (const text of pending) this._ws.send(text);
    this._setState("open", { attempt: this.attempt, recovering: this._positions.size > 0 });
  }

  _onClose(event) {
    // partysocket calls this for every close, before it decides to reconnect. Its own
    // synthetic close events (after an error, a connect timeout, or our own close) are
    // not the browser's CloseEvent: a browser reports a failed handshake or a lost
    // connection as an error, so those are 1006 unless the client closed on purpose.
    clearTimeout(this._timers.stable);
    clearInterval(this._timers.heartbeat);
    clearTimeout(this._timers.restart);
    const real = typeof CloseEvent !== "undefined" && event instanceof CloseEvent;
    const mine = real ? null : this._closeInfo;
    if (mine && !mine.final) this._closeInfo = null; // it explains this close only
    const code = real ? event.code : mine ? mine.code : 1006;
    const reason = real ? event.reason : mine ? mine.reason : event.reason || "";
    this._lastClose = { code, reason };
    if (this.state === "closed" || mine?.final) return false;
    const retry = real
      ? (this.options.shouldReconnect || isRetryable)(code, reason)
      : true;
    if (!retry) {
      this._finish(code, reason);
      return false;
    }
    if (!mine) this.attempt += 1; // a close we asked for is no failure
    this.state = "reconnecting";
    return true;
  }

  _finish(code, reason) {
    if (this.state === "closed") return;
    this.state = "closed";
    for (const timer of Object.values(this._timers)) clearTimeout(timer);
    clearInterval(this._timers.heartbeat);
    globalThis.removeEventListener?.("online", this._onlineListener);
    if (this._buffer.length) {
      console.warn(`rtframe: ${this._buffer.length} queued message(s) not sent (closed)`);
    }
    this._setState("closed", { code, reason, unsent: this._buffer.length });
  }

  _restart(reason, code = 1000) {
    // Cut a backoff wait short, or close the socket (partysocket connects again). Only a
    // socket that is open or opening reports a close, which `_onClose` takes as ours.
    if (this._wake) {
      this._wakeUp();
      return;
    }
    const state = this._ws.readyState;
    if (state === ReconnectingWebSocket.OPEN || state === ReconnectingWebSocket.CONNECTING) {
      this._closeInfo = { final: false, code, reason };
    }
    this._ws.reconnect(code, reason);
  }

  _wakeUp() {
    if (this._wake) this._wake();
  }

  _watchHeartbeat() {
    // The server pings every `interval` seconds. Silent that long, the client pings it
    // itself (a server answers `$ping` whatever its own heartbeat settings, so a server
    // with heartbeats off is not taken for dead); silent `timeout` more, it is dead.
    clearInterval(this._timers.heartbeat);
    const beat = this.options.heartbeat;
    if (!beat) return;
    const quiet = beat.interval * 1000;
    const dead = (beat.interval + beat.timeout) * 1000;
    this._timers.heartbeat = setInterval(
      () => {
        const silent = Date.now() - this._lastHeard;
        if (silent > dead) {
          console.warn(`rtframe: nothing heard from the server for ${silent} ms; reconnecting`);
          this._restart("server silent");
        } else if (silent > quiet && !this._probed) {
          this._probed = true;
          this._ws.send('{"type":"$ping"}');
        }
      },
      Math.max(50, Math.min(5000, quiet / 5)),
    );
  }

  _onMessage(event) {
    this._lastHeard = Date.now();
    this._probed = false;
    if (typeof event.data !== "string") {
      this._emit("$binary", event.data);
      return;
    }
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch (error) {
      this.stats.invalidFrames += 1;
      console.warn("rtframe: a frame that is not JSON", event.data);
      this._emit("$invalid", { data: event.data, error: String(error) });
      return;
    }
    const type = msg && typeof msg === "object" ? msg.type : undefined;
    if (typeof type !== "string") {
      this.stats.invalidFrames += 1;
      console.warn("rtframe: a frame with no string `type`", msg);
      this._emit("$invalid", { data: event.data, error: "no type" });
      return;
    }
    if (type === "$ping") {
      this._ws.send('{"type":"$pong"}');
      return;
    }
    if (type === "$pong") return;
    const pos = msg.$pos;
    if (pos && typeof pos.group === "string" && !this._take(pos.group, pos)) return;
    if (type.startsWith("$")) this._control(type, msg);
    this._emit(type, msg);
    if (!type.startsWith("$")) this._emit("*", msg);
  }

  _control(type, msg) {
    if (type === "$recovery" && !msg.recovered && typeof msg.group === "string") {
      // nothing was replayed: carry on from where the group is now (the page resyncs)
      this._ahead.delete(msg.group);
      this._remember(msg.group, msg);
    } else if (type === "$dropped" && this._positions.size) {
      // frames were dropped while we were too slow: a reconnect with $since replays them
      queueMicrotask(() => this._restart("recovering dropped frames"));
    } else if (type === "$reconnect") {
      // the server is draining: it closes us in after_ms; if it does not, we go then
      const after = Math.max(0, Number(msg.after_ms) || 0);
      this._restartAt = Date.now() + after;
      clearTimeout(this._timers.restart);
      this._timers.restart = setTimeout(() => this._restart("server restarting"), after + 2000);
    } else if (type === "$presence" && typeof msg.group === "string") {
      let members = this._presence.get(msg.group);
      if (!members) this._presence.set(msg.group, (members = new Map()));
      for (const id of msg.left || []) members.delete(id);
      for (const entry of msg.joined || []) members.set(entry.id, entry);
    }
  }

  // A history frame: false when it was handed over already. The position kept for
  // `$since` is the last one up to which every frame arrived; frames past a gap (the
  // server dropped some while we were slow) are shown and remembered, so the replay
  // that fills the gap after a reconnect does not show them twice.
  _take(group, pos) {
    const last = this._positions.get(group);
    const { epoch, offset } = pos;
    if (!last || last.epoch !== epoch || !Number.isInteger(offset)) {
      this._ahead.delete(group);
      this._remember(group, pos);
      return true;
    }
    const ahead = this._ahead.get(group);
    if (offset <= last.offset || (ahead && ahead.has(offset))) return false;
    if (offset === last.offset + 1) {
      let next = offset;
      while (ahead && ahead.delete(next + 1)) next += 1;
      if (ahead && ahead.size === 0) this._ahead.delete(group);
      this._remember(group, { epoch, offset: next });
    } else if (ahead) {
      ahead.add(offset);
    } else {
      this._ahead.set(group, new Set([offset]));
    }
    return true;
  }

  _remember(group, { epoch, offset }) {
    // Only a well-formed position goes into `$since`: a server refuses the handshake
    // of a malformed one (1008), which a browser could only retry, forever.
    if (typeof epoch === "string" && Number.isInteger(offset) && offset >= 0) {
      this._positions.set(group, { epoch, offset });
    } else {
      console.warn("rtframe: a malformed position, not kept", group, epoch, offset);
    }
  }

  _setState(state, detail) {
    this.state = state;
    this._emit("$state", { state, ...detail });
  }

  _emit(type, value) {
    const handlers = this._handlers.get(type);
    if (!handlers) return;
    for (const fn of [...handlers]) {
      try {
        fn(value, this);
      } catch (error) {
        // one broken handler must not stop the others, nor the client; the page still
        // sees the error (window "error" event, the console)
        (globalThis.reportError || console.error)(error);
      }
    }
  }
}
