// @openmeet/bridge-client, built from clients/typescript/src by `npm run build`.
// Do not edit: change the source and rebuild; `npm run check:build` fails
// when this file differs from the source's build.

// src/errors.ts
var ErrCode = {
  Forbidden: "M_FORBIDDEN",
  MissingToken: "M_MISSING_TOKEN",
  UnknownToken: "M_UNKNOWN_TOKEN",
  NotJSON: "M_NOT_JSON",
  BadJSON: "M_BAD_JSON",
  InvalidParam: "M_INVALID_PARAM",
  TooLarge: "M_TOO_LARGE",
  NotFound: "M_NOT_FOUND",
  Unrecognized: "M_UNRECOGNIZED",
  LimitExceeded: "M_LIMIT_EXCEEDED",
  DuplicateAnnotation: "M_DUPLICATE_ANNOTATION",
  Unknown: "M_UNKNOWN",
  PortalClosed: "NET.OPENMEET.PORTAL_CLOSED",
  /** The txn id was already used for another request; nothing was done. */
  TxnConflict: "NET.OPENMEET.TXN_CONFLICT"
};
var BridgeError = class extends Error {
  name = "BridgeError";
  /** HTTP status. */
  status;
  /** Matrix errcode, e.g. M_FORBIDDEN or NET.OPENMEET.PORTAL_CLOSED. */
  errcode;
  /** The parsed body (the error object, or what else the bridge sent). */
  body;
  /** When to try again, from `retry_after_ms` or `Retry-After`, if given. */
  retryAfterMs;
  constructor(status, errcode, message, body, retryAfterMs) {
    super(message);
    this.status = status;
    this.errcode = errcode;
    this.body = body;
    this.retryAfterMs = retryAfterMs;
  }
  /** Worth retrying with the same request: rate limits, 5xx, timeouts. */
  get transient() {
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
};
var NetworkError = class extends Error {
  name = "NetworkError";
  constructor(message, options) {
    super(message, options);
  }
};
var SendFailedError = class extends Error {
  name = "SendFailedError";
  txnId;
  /** The refusal: a BridgeError, or the outbox's last error for state "failed". */
  cause;
  constructor(txnId, message, cause) {
    super(message);
    this.txnId = txnId;
    this.cause = cause;
  }
};
function isBridgeError(err, errcode) {
  return err instanceof BridgeError && (errcode === void 0 || err.errcode === errcode);
}

// src/backoff.ts
var Backoff = class {
  initialMs;
  maxMs;
  factor;
  random;
  attempts = 0;
  constructor(opts = {}) {
    this.initialMs = opts.initialMs ?? 1e3;
    this.maxMs = opts.maxMs ?? 3e4;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
  }
  /** How many delays were handed out since the last reset. */
  get attempt() {
    return this.attempts;
  }
  /** The delay before the next try; hintMs is the server's wish, if any. */
  next(hintMs) {
    const ceiling = Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, this.attempts));
    this.attempts++;
    const jittered = ceiling / 2 + this.random() * (ceiling / 2);
    if (hintMs === void 0 || !(hintMs >= 0)) return Math.round(jittered);
    const hinted = hintMs + this.random() * Math.min(hintMs * 0.1, 1e3);
    return Math.round(Math.max(jittered, hinted));
  }
  /** Starts over after a success. */
  reset() {
    this.attempts = 0;
  }
};
function parseRetryAfter(value, now = Date.now()) {
  if (value == null) return void 0;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1e3;
  if (!/^[A-Za-z]{3}, /.test(v)) return void 0;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return void 0;
  return Math.max(0, at - now);
}
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
var Waker = class {
  wakers = /* @__PURE__ */ new Set();
  wait(ms, signal) {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const done2 = () => {
        clearTimeout(timer);
        this.wakers.delete(done2);
        signal?.removeEventListener("abort", done2);
        resolve();
      };
      const timer = setTimeout(done2, ms);
      this.wakers.add(done2);
      signal?.addEventListener("abort", done2, { once: true });
    });
  }
  /** Ends every wait now. */
  wake() {
    for (const done2 of [...this.wakers]) done2();
  }
};

// src/http.ts
function buildURL(baseUrl, path, query) {
  let url = baseUrl.replace(/\/+$/, "") + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== void 0) params.set(key, String(value));
    }
    const qs = params.toString();
    if (qs) url += "?" + qs;
  }
  return url;
}
var seg = (s) => encodeURIComponent(s);
async function send(fetchImpl, baseUrl, spec) {
  const headers = { Accept: "application/json", ...spec.headers };
  const init = { method: spec.method, headers, cache: "no-store" };
  if (spec.signal) init.signal = spec.signal;
  if (spec.body !== void 0) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(spec.body);
  } else if (spec.rawBody !== void 0) {
    init.body = spec.rawBody;
  }
  let resp;
  try {
    resp = await fetchImpl(buildURL(baseUrl, spec.path, spec.query), init);
  } catch (err) {
    throw asNetworkError(err);
  }
  let body;
  try {
    body = await readBody(resp);
  } catch (err) {
    throw asNetworkError(err);
  }
  if (resp.status < 200 || resp.status > 299) throw errorFrom(resp, body);
  return { status: resp.status, headers: resp.headers, body };
}
async function readBody(resp) {
  const text = await resp.text();
  if (text === "") return void 0;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
function asNetworkError(err) {
  if (isAbort(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new NetworkError(message, { cause: err });
}
function isAbort(err) {
  return typeof err === "object" && err !== null && err.name === "AbortError";
}
function errorFrom(resp, body, now = Date.now()) {
  let errcode = ErrCode.Unknown;
  let message = `HTTP ${resp.status}${resp.statusText ? " " + resp.statusText : ""}`;
  let retryAfterMs = parseRetryAfter(resp.headers.get("Retry-After"), now);
  if (typeof body === "object" && body !== null) {
    const b = body;
    if (typeof b.errcode === "string") errcode = b.errcode;
    if (typeof b.error === "string" && b.error !== "") message = b.error;
    if (typeof b.retry_after_ms === "number" && b.retry_after_ms >= 0) retryAfterMs = b.retry_after_ms;
  } else if (typeof body === "string" && body.trim() !== "") {
    message += ": " + body.trim().slice(0, 200);
  }
  return new BridgeError(resp.status, errcode, message, body, retryAfterMs);
}
async function retryRateLimited(attempt, opts = {}, signal) {
  const retries = opts.retries ?? 3;
  const maxWaitMs = opts.maxWaitMs ?? 6e4;
  for (let tried = 0; ; tried++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof BridgeError) || err.status !== 429 || err.errcode !== ErrCode.LimitExceeded) throw err;
      const wait = err.retryAfterMs;
      if (tried >= retries || wait === void 0 || wait > maxWaitMs) throw err;
      await sleep(wait, signal);
    }
  }
}

// src/provisioning.ts
var provisionPrefix = "/_openmeet/provision/v1";
function kindPath(kind) {
  switch (kind) {
    case "event":
    case "events":
      return "events";
    case "group":
    case "groups":
      return "groups";
  }
  throw new TypeError(`unknown portal kind ${JSON.stringify(kind)}: want events or groups`);
}
var ProvisioningClient = class {
  constructor(opts) {
    this.opts = opts;
    if (!opts.fetch && typeof globalThis.fetch !== "function") throw new Error("fetch is not available: pass options.fetch");
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }
  opts;
  fetchImpl;
  /** Creates or updates a ghost. */
  putUser(tenant, slug, user) {
    return this.change("PUT", this.userPath(tenant, slug), user);
  }
  getUser(tenant, slug) {
    return this.read(this.userPath(tenant, slug));
  }
  /** Creates, updates or reopens a portal. */
  putPortal(tenant, kind, slug, portal) {
    return this.change("PUT", this.portalPath(tenant, kind, slug), portal);
  }
  getPortal(tenant, kind, slug) {
    return this.read(this.portalPath(tenant, kind, slug));
  }
  /** One page of portals by slug; pass the page's next as after for the following one. */
  listPortals(tenant, kind, opts = {}) {
    return this.read(`${provisionPrefix}/tenants/${seg(tenant)}/${kindPath(kind)}`, { limit: opts.limit, after: opts.after });
  }
  /** Every portal of a kind, page after page. */
  async *allPortals(tenant, kind, opts = {}) {
    let after;
    do {
      const page = await this.listPortals(tenant, kind, { limit: opts.pageSize, after });
      yield* page.portals;
      after = page.next || void 0;
    } while (after !== void 0);
  }
  /** Closes a portal: ghosts leave, the alias goes, the room becomes invite-only. */
  closePortal(tenant, kind, slug) {
    return this.change("DELETE", this.portalPath(tenant, kind, slug));
  }
  /** Makes a ghost a member with a role; 202 answers with the portal (BatchResult). */
  putMember(tenant, kind, slug, user, role) {
    return this.change("PUT", this.memberPath(tenant, kind, slug, user), { role });
  }
  getMember(tenant, kind, slug, user) {
    return this.read(this.memberPath(tenant, kind, slug, user));
  }
  async listMembers(tenant, kind, slug) {
    return (await this.read(`${this.portalPath(tenant, kind, slug)}/members`)).members;
  }
  /** Takes a ghost out of the portal. */
  removeMember(tenant, kind, slug, user) {
    return this.change("DELETE", this.memberPath(tenant, kind, slug, user));
  }
  /** Sets and removes up to 10,000 members at once, all or nothing. */
  batchMembers(tenant, kind, slug, batch) {
    return this.change("POST", `${this.portalPath(tenant, kind, slug)}/members:batch`, batch);
  }
  userPath(tenant, slug) {
    return `${provisionPrefix}/tenants/${seg(tenant)}/users/${seg(slug)}`;
  }
  portalPath(tenant, kind, slug) {
    return `${provisionPrefix}/tenants/${seg(tenant)}/${kindPath(kind)}/${seg(slug)}`;
  }
  memberPath(tenant, kind, slug, user) {
    return `${this.portalPath(tenant, kind, slug)}/members/${seg(user)}`;
  }
  async read(path, query) {
    const spec = { method: "GET", path };
    if (query) spec.query = query;
    return (await this.request(spec)).body;
  }
  async change(method, path, body) {
    const spec = { method, path };
    if (body !== void 0) spec.body = body;
    const answer = await this.request(spec);
    if (answer.status === 202) return { pending: true, status: 202, value: answer.body };
    return { pending: false, status: 200, value: answer.body };
  }
  async request(spec) {
    const s = this.opts.secret;
    const secret = typeof s === "function" ? await s() : s;
    const timeout = this.opts.timeoutMs ?? 6e4;
    const req = { ...spec, headers: { Authorization: `Bearer ${secret}` } };
    if (timeout > 0 && typeof AbortSignal.timeout === "function") req.signal = AbortSignal.timeout(timeout);
    return send(this.fetchImpl, this.opts.baseUrl, req);
  }
};

// src/auth.ts
var TokenSource = class {
  constructor(provider) {
    this.provider = provider;
  }
  provider;
  current;
  get() {
    this.current ??= this.ask(false);
    return this.current;
  }
  /** A fresh token after stale was refused (unless another refresh already replaced it). */
  async refresh(stale) {
    const now = this.current ? await this.current.catch(() => void 0) : void 0;
    if (now !== void 0 && now !== stale) return now;
    this.current = this.ask(true);
    return this.current;
  }
  /** Forgets the cached token: the next request asks the provider. */
  clear() {
    this.current = void 0;
  }
  ask(refresh) {
    const p = Promise.resolve().then(() => this.provider({ refresh })).then((token) => {
      if (typeof token !== "string" || token === "") throw new Error("token provider returned no token");
      return token;
    });
    p.catch(() => {
      if (this.current === p) this.current = void 0;
    });
    return p;
  }
};
async function sendAuthed(fetchImpl, baseUrl, tokens, spec) {
  const token = await tokens.get();
  try {
    return await send(fetchImpl, baseUrl, withBearer(spec, token));
  } catch (err) {
    if (!(err instanceof BridgeError) || err.status !== 401) throw err;
  }
  const fresh = await tokens.refresh(token);
  return send(fetchImpl, baseUrl, withBearer(spec, fresh));
}
function withBearer(spec, token) {
  return { ...spec, headers: { ...spec.headers, Authorization: `Bearer ${token}` } };
}

// src/emitter.ts
var Emitter = class {
  listeners = {};
  on(name, listener) {
    (this.listeners[name] ??= /* @__PURE__ */ new Set()).add(listener);
    return () => this.off(name, listener);
  }
  off(name, listener) {
    this.listeners[name]?.delete(listener);
  }
  /** Calls every listener of name; one that throws does not stop the others. */
  emit(name, value) {
    const set = this.listeners[name];
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(value);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
};

// src/events.ts
var StreamEventName = {
  Message: "m.room.message",
  Reaction: "m.reaction",
  Redaction: "m.room.redaction",
  Member: "m.room.member",
  Typing: "m.typing",
  Receipt: "m.receipt",
  /** Every other Matrix event type (room name, topic, state, custom). */
  Other: "m.event",
  /** The position is outside the stream's retention: reload history. */
  Reset: "reset",
  /** Others' membership of a room changed while the stream was behind. */
  Members: "members"
};
var streamEventNames = [...Object.values(StreamEventName), "message", "position"];
var str = (v) => typeof v === "string" ? v : void 0;
var obj = (v) => typeof v === "object" && v !== null && !Array.isArray(v) ? v : {};
function toChatEvent(payload, live, position) {
  const event = obj(payload.event);
  const content = obj(event.content);
  const rel = obj(content["m.relates_to"]);
  const base = {
    type: str(event.type) ?? "",
    roomId: payload.room_id ?? str(event.room_id) ?? "",
    live,
    event,
    payload
  };
  if (payload.portal) base.portal = payload.portal;
  if (payload.sender) base.sender = payload.sender;
  if (payload.media) base.media = payload.media;
  if (str(event.event_id)) base.eventId = event.event_id;
  const pos = payload.stream_pos ?? position;
  if (pos !== void 0 && pos > 0) base.position = pos;
  if (payload.txn_id) base.txnId = payload.txn_id;
  if (typeof event.origin_server_ts === "number") base.ts = event.origin_server_ts;
  switch (base.type) {
    case "m.room.message": {
      if (rel.rel_type === "m.replace" && str(rel.event_id)) {
        const next = obj(content["m.new_content"]);
        const body = str(next.body) ?? str(content.body)?.replace(/^\* /, "") ?? "";
        const edit = { ...base, kind: "edit", targetEventId: rel.event_id, body };
        const formatted2 = str(next.formatted_body);
        if (formatted2 !== void 0) edit.formattedBody = formatted2;
        return edit;
      }
      const msg = { ...base, kind: "message", msgtype: str(content.msgtype) ?? "", body: str(content.body) ?? "" };
      const formatted = str(content.formatted_body);
      if (formatted !== void 0) msg.formattedBody = formatted;
      const replyTo = str(obj(rel["m.in_reply_to"]).event_id);
      if (replyTo) msg.replyTo = replyTo;
      return msg;
    }
    case "m.reaction":
      if (rel.rel_type === "m.annotation" && str(rel.event_id) && str(rel.key) !== void 0) {
        return { ...base, kind: "reaction", targetEventId: rel.event_id, key: rel.key };
      }
      break;
    case "m.room.redaction": {
      const redacts = str(content.redacts) ?? str(event.redacts);
      if (redacts) {
        const r = { ...base, kind: "redaction", redacts };
        const reason = str(content.reason);
        if (reason !== void 0) r.reason = reason;
        return r;
      }
      break;
    }
    case "m.room.member": {
      const userId = str(event.state_key);
      if (userId !== void 0) {
        const m = { ...base, kind: "member", userId, membership: str(content.membership) ?? "" };
        const name = str(content.displayname);
        if (name !== void 0) m.displayname = name;
        return m;
      }
      break;
    }
    case "m.typing": {
      const ids = Array.isArray(content.user_ids) ? content.user_ids.filter((u) => typeof u === "string") : [];
      return { ...base, kind: "typing", userIds: ids, users: payload.users ?? [] };
    }
    case "m.receipt":
      return { ...base, kind: "receipt", receipts: receiptsOf(content), users: payload.users ?? [] };
  }
  return { ...base, kind: "unknown" };
}
function receiptsOf(content) {
  const out = [];
  for (const [eventId, byType] of Object.entries(content)) {
    for (const [receiptType, byUser] of Object.entries(obj(byType))) {
      for (const [userId, r] of Object.entries(obj(byUser))) {
        const receipt = { eventId, userId, receiptType };
        const ts = obj(r).ts;
        if (typeof ts === "number") receipt.ts = ts;
        const thread = str(obj(r).thread_id);
        if (thread !== void 0) receipt.threadId = thread;
        out.push(receipt);
      }
    }
  }
  return out;
}

// src/queue.ts
var SendQueue = class {
  constructor(sender, storage, onUpdate, opts = {}) {
    this.sender = sender;
    this.storage = storage;
    this.onUpdate = onUpdate;
    this.opts = opts;
  }
  sender;
  storage;
  onUpdate;
  opts;
  rooms = /* @__PURE__ */ new Map();
  byTxn = /* @__PURE__ */ new Map();
  waiting = /* @__PURE__ */ new Map();
  waker = new Waker();
  nextSeq = 1;
  loaded;
  stopped = false;
  /** Loads what an earlier run left and starts sending it. Safe to call again. */
  start() {
    this.stopped = false;
    return this.whenLoaded().then(() => {
      for (const key of this.rooms.keys()) void this.pump(key);
    });
  }
  /** Stops sending; queued items stay stored. An in-flight request still completes. */
  stop() {
    this.stopped = true;
    this.waker.wake();
  }
  /** Ends every backoff wait now: the network is back. */
  kick() {
    this.waker.wake();
  }
  /**
   * Stores an item and queues it. The promise resolves once it is stored,
   * with its txn id and a promise of the bridge's acceptance (which rejects
   * with SendFailedError when the bridge refuses it for good). Enqueueing a
   * txn id that is already queued returns that item.
   */
  async enqueue(room, action, body, txnId) {
    await this.whenLoaded();
    const id = txnId ?? this.opts.txnId?.() ?? newTxnId();
    if (this.byTxn.has(id)) return { txnId: id, accepted: this.promiseFor(id) };
    const item = {
      txnId: id,
      seq: this.nextSeq++,
      room: { kind: room.kind, slug: room.slug },
      action,
      body,
      createdAt: (this.opts.now ?? Date.now)(),
      attempts: 0
    };
    await this.storage.put(item);
    this.add(item);
    const accepted = this.promiseFor(id);
    this.onUpdate({ state: "queued", item });
    if (!this.stopped) void this.pump(roomKey(item.room));
    return { txnId: id, accepted };
  }
  /** Items not yet accepted, in order; of one room when given. */
  pending(room) {
    if (room) return [...this.rooms.get(roomKey(room))?.items ?? []];
    return [...this.byTxn.values()].sort((a, b) => a.seq - b.seq);
  }
  /** Resolves once every queued item is accepted or failed (tests, page unload). */
  async drained() {
    while (this.byTxn.size > 0) {
      await Promise.allSettled([...this.byTxn.keys()].map((t) => this.promiseFor(t)));
    }
  }
  promiseFor(txnId) {
    const known = this.waiting.get(txnId);
    if (known) return known.promise;
    let settle;
    const promise = new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
    promise.catch(() => {
    });
    this.waiting.set(txnId, { promise, ...settle });
    return promise;
  }
  // Loads the storage once; a failed load (storage unavailable) is tried
  // again by the next call.
  whenLoaded() {
    this.loaded ??= this.load().catch((err) => {
      this.loaded = void 0;
      throw err;
    });
    return this.loaded;
  }
  async load() {
    const items = (await this.storage.load()).sort((a, b) => a.seq - b.seq);
    for (const item of items) {
      if (this.byTxn.has(item.txnId)) continue;
      this.add(item);
      this.nextSeq = Math.max(this.nextSeq, item.seq + 1);
    }
  }
  add(item) {
    const key = roomKey(item.room);
    let line = this.rooms.get(key);
    if (!line) {
      line = { items: [], running: false, backoff: new Backoff(this.opts.backoff) };
      this.rooms.set(key, line);
    }
    line.items.push(item);
    this.byTxn.set(item.txnId, item);
  }
  async pump(key) {
    const line = this.rooms.get(key);
    if (!line || line.running) return;
    line.running = true;
    try {
      while (!this.stopped && line.items.length > 0) {
        const item = line.items[0];
        const outcome = await this.attempt(item);
        if (outcome.kind === "retry") {
          if (this.stopped) break;
          const retryInMs = line.backoff.next(outcome.hint);
          this.onUpdate({ state: "retrying", item, error: outcome.error, retryInMs });
          await this.waker.wait(retryInMs);
          continue;
        }
        line.backoff.reset();
        await this.storage.delete(item.txnId).catch(() => {
        });
        line.items.shift();
        this.byTxn.delete(item.txnId);
        const w = this.waiting.get(item.txnId);
        this.waiting.delete(item.txnId);
        if (outcome.kind === "accepted") {
          w?.resolve(outcome.result);
          this.onUpdate({ state: "accepted", item, result: outcome.result });
        } else {
          w?.reject(outcome.error);
          this.onUpdate({ state: "failed", item, error: outcome.error });
        }
      }
    } finally {
      line.running = false;
    }
    if (line.items.length === 0) this.rooms.delete(key);
    else if (!this.stopped) void this.pump(key);
  }
  async attempt(item) {
    item.attempts++;
    let answer;
    try {
      answer = await this.sender(item);
    } catch (err) {
      item.lastError = err instanceof Error ? err.message : String(err);
      await this.storage.put(item).catch(() => {
      });
      return classifyError(item, err);
    }
    const result = {
      txnId: item.txnId,
      state: answer.status === 202 ? "pending" : "sent",
      status: answer.status === 202 ? 202 : 200
    };
    if (answer.body?.event_id) result.eventId = answer.body.event_id;
    return { kind: "accepted", result };
  }
};
function classifyError(item, err) {
  if (!(err instanceof BridgeError)) return { kind: "retry", error: err };
  const body = typeof err.body === "object" && err.body !== null ? err.body : {};
  const outboxFailed = body.state === "failed";
  const reason = outboxFailed && body.error ? body.error : err.message;
  if (item.action === "react" && (err.errcode === ErrCode.DuplicateAnnotation || reason.includes(ErrCode.DuplicateAnnotation))) {
    return { kind: "accepted", result: { txnId: item.txnId, state: "sent", status: 200, duplicate: true } };
  }
  if (outboxFailed) {
    return { kind: "failed", error: new SendFailedError(item.txnId, reason, err) };
  }
  if (err.transient || err.status === 401) {
    const out = { kind: "retry", error: err };
    if (err.retryAfterMs !== void 0) out.hint = err.retryAfterMs;
    return out;
  }
  return { kind: "failed", error: new SendFailedError(item.txnId, reason, err) };
}
function roomKey(room) {
  return `${room.kind}/${room.slug}`;
}
function newTxnId() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// src/storage/memory.ts
var MemoryQueueStorage = class {
  items = /* @__PURE__ */ new Map();
  async load() {
    return [...this.items.values()].map(copy);
  }
  async put(item) {
    this.items.set(item.txnId, copy(item));
  }
  async delete(txnId) {
    this.items.delete(txnId);
  }
  /** How many items are stored. */
  get size() {
    return this.items.size;
  }
};
function copy(item) {
  return JSON.parse(JSON.stringify(item));
}

// src/sse.ts
var SSEParser = class {
  /** initialId is the last event ID the stream resumes from, if any. */
  constructor(handlers, initialId = "") {
    this.handlers = handlers;
    this.idBuffer = initialId;
    this.lastId = initialId;
  }
  handlers;
  buffer = "";
  sawCR = false;
  first = true;
  data = [];
  eventName = "";
  idBuffer;
  frameHasId = false;
  lastId;
  /** The stream's last event ID so far. */
  get lastEventId() {
    return this.lastId;
  }
  /** Feeds decoded text. */
  feed(chunk) {
    if (chunk === "") return;
    if (this.first) {
      this.first = false;
      if (chunk.charCodeAt(0) === 65279) chunk = chunk.slice(1);
    }
    const text = this.buffer + chunk;
    this.buffer = "";
    let start = 0;
    if (this.sawCR && text.charCodeAt(0) === 10) start = 1;
    this.sawCR = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(text.slice(start, i));
      if (c === 13) {
        if (i + 1 === text.length) {
          this.sawCR = true;
        } else if (text.charCodeAt(i + 1) === 10) {
          i++;
        }
      }
      start = i + 1;
    }
    this.buffer = text.slice(start);
  }
  /**
   * The stream ended. An unterminated last frame is dropped, as the standard
   * says: only a blank line dispatches.
   */
  end() {
    this.buffer = "";
    this.sawCR = false;
    this.data = [];
    this.eventName = "";
    this.frameHasId = false;
  }
  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58) {
      this.handlers.onComment?.(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.eventName = value;
        break;
      case "id":
        if (!value.includes("\0")) {
          this.idBuffer = value;
          this.frameHasId = true;
        }
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
        break;
      default:
    }
  }
  dispatch() {
    const hasId = this.frameHasId;
    if (this.idBuffer !== this.lastId) {
      this.lastId = this.idBuffer;
      this.handlers.onId?.(this.lastId);
    }
    const data = this.data;
    const name = this.eventName;
    this.data = [];
    this.eventName = "";
    this.frameHasId = false;
    if (data.length === 0) return;
    this.handlers.onFrame?.({ event: name || "message", data: data.join("\n"), lastEventId: this.lastId, hasId });
  }
};

// src/stream.ts
var eventsPath = "/_openmeet/client/v1/events";
function fatal(err) {
  return err instanceof BridgeError && (err.status === 401 || err.status === 403);
}
var EventStream = class {
  constructor(deps, opts, sink) {
    this.deps = deps;
    this.opts = opts;
    this.sink = sink;
    this.backoff = new Backoff(opts.backoff);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 6e4;
  }
  deps;
  opts;
  sink;
  pos;
  running = false;
  stopper;
  waker = new Waker();
  backoff;
  idleTimeoutMs;
  /** The last position seen: what a reconnect sends as Last-Event-ID. */
  get position() {
    return this.pos;
  }
  set position(p) {
    this.pos = p === "" ? void 0 : p;
  }
  get isRunning() {
    return this.running;
  }
  /** Opens the stream and keeps it open until stop(). */
  start() {
    if (this.running) return;
    this.running = true;
    this.stopper = new AbortController();
    void this.loop(this.stopper.signal);
  }
  stop() {
    if (!this.running) return;
    this.running = false;
    this.stopper?.abort();
    this.sink.status({ state: "closed" });
  }
  /** Skips the wait before the next try (the browser is back online). */
  wake() {
    this.waker.wake();
  }
  async loop(stop) {
    this.sink.status({ state: "connecting" });
    while (!stop.aborted) {
      let error;
      let hint;
      try {
        if (this.opts.transport === "eventsource") await this.viaEventSource(stop);
        else await this.viaFetch(stop);
      } catch (err) {
        error = err;
      }
      if (stop.aborted) return;
      if (fatal(error)) {
        this.running = false;
        this.sink.status({ state: "closed", error });
        return;
      }
      if (error instanceof BridgeError) {
        if (error.status === 400 && error.errcode === ErrCode.InvalidParam && this.pos !== void 0) {
          this.pos = void 0;
          this.sink.frame({ event: "reset", data: JSON.stringify({ reason: error.message }), lastEventId: "", hasId: false });
          continue;
        }
        hint = error.retryAfterMs;
      }
      const retryInMs = this.backoff.next(hint);
      const status = { state: "reconnecting", retryInMs };
      if (error !== void 0) status.error = error;
      this.sink.status(status);
      await this.waker.wait(retryInMs, stop);
    }
  }
  parser() {
    return new SSEParser(
      {
        onFrame: (f) => this.sink.frame(f),
        onId: (id) => {
          this.pos = id === "" ? void 0 : id;
          if (id !== "") this.sink.position(id);
        },
        onRetry: (ms) => {
          this.backoff.initialMs = ms;
        }
      },
      this.pos ?? ""
    );
  }
  async open(signal, token) {
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token}` };
    if (this.pos !== void 0) headers["Last-Event-ID"] = this.pos;
    try {
      return await this.deps.fetch(buildURL(this.deps.baseUrl, eventsPath), { headers, signal, cache: "no-store" });
    } catch (err) {
      throw asNetworkError(err);
    }
  }
  async viaFetch(stop) {
    const conn = new AbortController();
    const onStop = () => conn.abort();
    stop.addEventListener("abort", onStop, { once: true });
    try {
      let token = await this.deps.tokens.get();
      let resp = await this.open(conn.signal, token);
      if (resp.status === 401) {
        await resp.body?.cancel().catch(() => {
        });
        token = await this.deps.tokens.refresh(token);
        resp = await this.open(conn.signal, token);
      }
      if (resp.status !== 200) {
        const text = await resp.text().catch(() => "");
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
        }
        throw errorFrom(resp, body);
      }
      const type = resp.headers.get("Content-Type") ?? "";
      if (!type.startsWith("text/event-stream") || !resp.body) {
        await resp.body?.cancel().catch(() => {
        });
        throw new BridgeError(502, ErrCode.Unknown, `stream answered ${type || "no content type"}`);
      }
      this.backoff.reset();
      this.sink.status({ state: "open" });
      await this.read(resp.body, conn);
    } catch (err) {
      if (isAbort(err) && !stop.aborted) throw asNetworkError(new Error("stream was silent for too long"));
      throw err;
    } finally {
      stop.removeEventListener("abort", onStop);
      conn.abort();
    }
  }
  async read(body, conn) {
    const parser = this.parser();
    const decoder = new TextDecoder("utf-8");
    const reader = body.getReader();
    let idle;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => conn.abort(), this.idleTimeoutMs);
    };
    arm();
    try {
      for (; ; ) {
        const { done: done2, value } = await reader.read();
        if (done2) break;
        arm();
        parser.feed(decoder.decode(value, { stream: true }));
      }
      parser.feed(decoder.decode());
    } catch (err) {
      throw asNetworkError(err);
    } finally {
      clearTimeout(idle);
      parser.end();
      reader.releaseLock();
    }
  }
  async viaEventSource(stop) {
    const ES = this.opts.EventSource ?? globalThis.EventSource;
    if (!ES) throw new Error("EventSource is not available; use the fetch transport");
    const { ticket } = await this.deps.ticket();
    if (stop.aborted) return;
    const query = { last_event_id: this.pos };
    if (this.opts.ticketInQuery !== false) query.ticket = ticket;
    const es = new ES(buildURL(this.deps.baseUrl, eventsPath, query), { withCredentials: this.opts.withCredentials ?? false });
    await new Promise((resolve) => {
      const end = () => {
        es.close();
        stop.removeEventListener("abort", end);
        resolve();
      };
      stop.addEventListener("abort", end, { once: true });
      es.onopen = () => {
        this.backoff.reset();
        this.sink.status({ state: "open" });
      };
      es.onerror = end;
      for (const name of streamEventNames) {
        es.addEventListener(name, (e) => {
          const hasId = e.lastEventId !== "" && e.lastEventId !== this.pos;
          if (hasId) {
            this.pos = e.lastEventId;
            this.sink.position(e.lastEventId);
          }
          this.sink.frame({ event: name, data: e.data, lastEventId: e.lastEventId, hasId });
        });
      }
    });
  }
};

// src/chat.ts
var clientPrefix = "/_openmeet/client/v1";
function pathKind(kind) {
  switch (kind) {
    case "event":
    case "events":
      return "events";
    case "group":
    case "groups":
      return "groups";
  }
  throw new TypeError(`unknown portal kind ${JSON.stringify(kind)}: want event or group`);
}
var toPosition = (p) => typeof p === "number" && Number.isFinite(p) ? String(p) : typeof p === "string" && p !== "" ? p : void 0;
var ChatClient = class extends Emitter {
  constructor(opts) {
    super();
    this.opts = opts;
    this.baseUrl = opts.baseUrl;
    if (!opts.fetch && typeof globalThis.fetch !== "function") throw new Error("fetch is not available: pass options.fetch");
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.tokens = new TokenSource(opts.token);
    this.timeoutMs = opts.requestTimeoutMs ?? 3e4;
    this.stream = new EventStream(
      { baseUrl: this.baseUrl, fetch: this.fetchImpl, tokens: this.tokens, ticket: () => this.ticket() },
      opts.stream ?? {},
      {
        frame: (f) => this.onFrame(f),
        position: (p) => this.emit("position", p),
        status: (s) => {
          this.lastStatus = s;
          if (s.state === "open") this.queue.kick();
          this.emit("status", s);
        }
      }
    );
    this.stream.position = toPosition(opts.position);
    const { storage, ...queueOpts } = opts.queue ?? {};
    this.queue = new SendQueue((item) => this.sendItem(item), storage ?? new MemoryQueueStorage(), (u) => this.emit("queue", u), queueOpts);
  }
  opts;
  baseUrl;
  fetchImpl;
  tokens;
  stream;
  queue;
  timeoutMs;
  lastStatus = { state: "closed" };
  // Per room (kind/slug): the position of the newest history page loaded,
  // and the event IDs it holds. Stream events up to that position, or with
  // one of those IDs (pushed to the bridge after the page was read from
  // Synapse), are already in the page and are not emitted again.
  floors = /* @__PURE__ */ new Map();
  inPage = /* @__PURE__ */ new Map();
  me;
  onOnline = () => {
    this.stream.wake();
    this.queue.kick();
  };
  watching = false;
  /** The stream's position: what it resumes from. */
  get position() {
    return this.stream.position;
  }
  get status() {
    return this.lastStatus;
  }
  /**
   * Opens the stream (resuming from position, the constructor's, or the
   * lowest newest-page position of the histories loaded so far) and starts
   * sending what the queue holds, also what an earlier page left in its
   * storage.
   */
  connect(opts = {}) {
    const from = toPosition(opts.position);
    if (from !== void 0) this.stream.position = from;
    else if (this.stream.position === void 0 && this.floors.size > 0) {
      this.stream.position = String(Math.min(...this.floors.values()));
    }
    this.watchOnline(true);
    this.stream.start();
    this.queue.start().catch((err) => this.emit("error", err));
  }
  /** Closes the stream and stops sending; queued items stay in storage. */
  disconnect() {
    this.watchOnline(false);
    this.stream.stop();
    this.queue.stop();
  }
  /** Starts sending the queue without opening the stream. */
  startQueue() {
    this.watchOnline(true);
    return this.queue.start();
  }
  /** Forgets the cached token: the next request asks the token provider again. */
  clearToken() {
    this.tokens.clear();
  }
  async whoami() {
    this.me ??= this.get("/whoami");
    this.me.catch(() => {
      this.me = void 0;
    });
    return this.me;
  }
  async rooms() {
    return (await this.get("/rooms")).rooms;
  }
  /**
   * One room with the user's power level and the level needed to remove
   * other people's events (one's own need none): offer removing others'
   * messages only when powerLevel >= redactLevel.
   */
  async room(room) {
    return (await this.call("GET", roomPath(room, ""))).body;
  }
  /**
   * A page of a room's history, newest first. Without from it is the newest
   * page; when the bridge says which stream position it is consistent with,
   * stream events of that room up to there are not emitted again.
   */
  async history(room, opts = {}) {
    const query = { from: opts.from, limit: opts.limit };
    const { body } = await this.call("GET", roomPath(room, "messages"), void 0, query);
    const page = { chunk: body.chunk, events: body.chunk.map((p) => toChatEvent(p, false)) };
    if (body.end) page.end = body.end;
    const position = toPosition(body.stream_pos ?? body.position);
    if (position !== void 0) page.position = position;
    if (opts.from === void 0) {
      const key = floorKey(room);
      this.inPage.set(key, new Set(page.events.flatMap((e) => e.eventId ? [e.eventId] : [])));
      if (position !== void 0 && /^\d+$/.test(position)) this.floors.set(key, Number(position));
    }
    return page;
  }
  /** The newest history page of each room, e.g. after a reset. */
  async reloadHistory(rooms, opts = {}) {
    const pages = await Promise.all(rooms.map((r) => this.history(r, opts.limit === void 0 ? {} : { limit: opts.limit })));
    return new Map(rooms.map((r, i) => [r, pages[i]]));
  }
  /** Queues a text message; body is the text or the full request. */
  send(room, body, opts = {}) {
    const req = typeof body === "string" ? { body } : body;
    return this.enqueue(room, "send", { ...req }, opts.txnId);
  }
  /** Queues an edit of one of the user's messages. */
  edit(room, eventId, body, opts = {}) {
    const req = { event_id: eventId, body };
    if (opts.formattedBody !== void 0) req.formatted_body = opts.formattedBody;
    return this.enqueue(room, "edit", req, opts.txnId);
  }
  /** Queues a reaction; one already there counts as accepted (duplicate: true). */
  react(room, eventId, key, opts = {}) {
    return this.enqueue(room, "react", { event_id: eventId, key }, opts.txnId);
  }
  /** Queues a redaction: removes a message, or takes back a reaction (its event ID). */
  redact(room, eventId, opts = {}) {
    const req = { event_id: eventId };
    if (opts.reason !== void 0) req.reason = opts.reason;
    return this.enqueue(room, "redact", req, opts.txnId);
  }
  /**
   * Sends a file (an image, video, audio or any allowed file) to a room at
   * once, not through the queue: files are not kept in storage. The same
   * txnId again with the same file (type, name and size) is the same
   * message. Errors are BridgeErrors: 409 NET.OPENMEET.TXN_CONFLICT when the
   * txnId was used for another request, 413 M_TOO_LARGE, 415
   * NET.OPENMEET.TYPE_NOT_ALLOWED or TYPE_MISMATCH, 503 when Synapse is down
   * (nothing was stored; retry).
   */
  async upload(room, file, opts = {}) {
    const txnId = opts.txnId ?? newTxnId();
    const name = file.name;
    const filename = opts.filename ?? (typeof name === "string" ? name : void 0);
    const spec = {
      method: "PUT",
      path: clientPrefix + roomPath(room, "upload/" + seg(txnId)),
      query: { filename },
      rawBody: file,
      headers: { "Content-Type": file.type || "application/octet-stream" }
    };
    if (opts.signal) spec.signal = opts.signal;
    const attempt = () => sendAuthed(this.fetchImpl, this.baseUrl, this.tokens, spec);
    return (await retryRateLimited(attempt, this.opts.rateLimitRetry, opts.signal)).body;
  }
  /** What may be uploaded: the size limit (the bridge's or Synapse's, the smaller) and the allowed types. */
  async mediaConfig() {
    return this.get("/media/config");
  }
  /** Items not yet accepted by the bridge (render them as pending), of one room when given. */
  pending(room) {
    return this.queue.pending(room ? { kind: pathKind(room.kind), slug: room.slug } : void 0);
  }
  /** Sets the typing state; not queued (a stale typing notice is worthless). */
  async typing(room, typing, timeoutMs) {
    const body = { typing };
    if (timeoutMs !== void 0) body.timeout_ms = timeoutMs;
    await this.call("PUT", roomPath(room, "typing"), body);
  }
  /** Marks the room read up to eventId. */
  async markRead(room, eventId) {
    await this.call("POST", roomPath(room, "receipt"), { event_id: eventId });
  }
  /** A single-use ticket for an EventSource of one's own. */
  async ticket() {
    return (await this.call("POST", "/events/ticket")).body;
  }
  async enqueue(room, action, body, txnId) {
    return this.queue.enqueue({ kind: pathKind(room.kind), slug: room.slug }, action, body, txnId);
  }
  sendItem(item) {
    return this.callOnce("PUT", `/rooms/${seg(item.room.kind)}/${seg(item.room.slug)}/${item.action}/${seg(item.txnId)}`, item.body);
  }
  async get(path) {
    return (await this.call("GET", path)).body;
  }
  /** A request, tried again after a 429's wait (opts.rateLimitRetry). */
  call(method, path, body, query) {
    return retryRateLimited(() => this.callOnce(method, path, body, query), this.opts.rateLimitRetry);
  }
  callOnce(method, path, body, query) {
    const spec = { method, path: clientPrefix + path };
    if (body !== void 0) spec.body = body;
    if (query !== void 0) spec.query = query;
    if (this.timeoutMs > 0 && typeof AbortSignal.timeout === "function") spec.signal = AbortSignal.timeout(this.timeoutMs);
    return sendAuthed(this.fetchImpl, this.baseUrl, this.tokens, spec);
  }
  onFrame(f) {
    let data;
    try {
      data = JSON.parse(f.data);
    } catch (err) {
      this.emit("error", new Error(`stream frame ${f.event} is not JSON`, { cause: err }));
      return;
    }
    const d = typeof data === "object" && data !== null ? data : {};
    if (f.event === StreamEventName.Reset) {
      this.floors.clear();
      this.inPage.clear();
      const notice = { reason: typeof d.reason === "string" ? d.reason : "reset" };
      const position = toPosition(d.stream_pos) ?? (f.hasId ? f.lastEventId : void 0);
      if (position !== void 0) notice.position = position;
      this.emit("reset", notice);
      return;
    }
    if (f.event === StreamEventName.Members) {
      const notice = { roomId: String(d.room_id ?? ""), count: typeof d.count === "number" ? d.count : 0 };
      if (d.portal) notice.portal = d.portal;
      if (typeof d.stream_pos === "number") notice.position = d.stream_pos;
      this.emit("members", notice);
      return;
    }
    if (typeof d.event !== "object" || d.event === null) {
      if (this.stream.position === void 0) this.stream.position = toPosition(d.stream_pos);
      if (typeof d.error === "string") this.emit("error", new Error(`stream: ${d.error}`));
      return;
    }
    const payload = d;
    const pos = f.hasId && /^\d+$/.test(f.lastEventId) ? Number(f.lastEventId) : void 0;
    const ev = toChatEvent(payload, true, pos);
    if (payload.portal && this.inPage.size > 0) {
      const key = floorKey(payload.portal);
      const floor = this.floors.get(key);
      if (ev.position !== void 0 && floor !== void 0 && ev.position <= floor) return;
      if (ev.eventId !== void 0 && this.inPage.get(key)?.has(ev.eventId)) return;
    }
    this.emit("event", ev);
    this.emit(ev.kind, ev);
  }
  watchOnline(on) {
    if (this.opts.watchOnline === false) return;
    const g = globalThis;
    if (typeof g.addEventListener !== "function" || on === this.watching) return;
    if (on) g.addEventListener("online", this.onOnline);
    else g.removeEventListener?.("online", this.onOnline);
    this.watching = on;
  }
};
function roomPath(room, rest) {
  const path = `/rooms/${pathKind(room.kind)}/${seg(room.slug)}`;
  return rest === "" ? path : `${path}/${rest}`;
}
function floorKey(room) {
  const kind = room.kind === "event" || room.kind === "group" ? room.kind + "s" : room.kind;
  return roomKey({ kind, slug: room.slug });
}

// src/storage/indexeddb.ts
var STORE = "send-queue";
var IndexedDBQueueStorage = class {
  db;
  namespace;
  name;
  factory;
  constructor(opts) {
    if (!opts.namespace) throw new Error("IndexedDBQueueStorage needs a namespace (the signed-in user)");
    this.namespace = opts.namespace;
    this.name = opts.database ?? "openmeet-bridge-client";
    this.factory = opts.indexedDB ?? globalThis.indexedDB;
  }
  async load() {
    const store = await this.store("readonly");
    const range = IDBKeyRange.bound([this.namespace], [this.namespace, []]);
    const rows = await request(store.getAll(range));
    return rows.map((r) => r.item);
  }
  async put(item) {
    const store = await this.store("readwrite");
    await done(store.transaction, store.put({ key: [this.namespace, item.txnId], item }));
  }
  async delete(txnId) {
    const store = await this.store("readwrite");
    await done(store.transaction, store.delete([this.namespace, txnId]));
  }
  /** Closes the database connection. */
  async close() {
    if (this.db) (await this.db).close();
    this.db = void 0;
  }
  async store(mode) {
    this.db ??= this.open();
    const db = await this.db;
    return db.transaction(STORE, mode).objectStore(STORE);
  }
  open() {
    const factory = this.factory;
    if (!factory) return Promise.reject(new Error("IndexedDB is not available"));
    const req = factory.open(this.name, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(STORE, { keyPath: "key" });
    };
    const opened = request(req);
    opened.catch(() => {
      this.db = void 0;
    });
    return opened;
  }
};
function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
function done(tx, _req) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}
export {
  Backoff,
  BridgeError,
  ChatClient,
  ErrCode,
  EventStream,
  IndexedDBQueueStorage,
  MemoryQueueStorage,
  NetworkError,
  ProvisioningClient,
  SSEParser,
  SendFailedError,
  SendQueue,
  StreamEventName,
  isBridgeError,
  newTxnId,
  parseRetryAfter,
  pathKind,
  streamEventNames,
  toChatEvent
};
