// ChatClient: what a browser page needs to chat through the bridge's client
// API, with no transport code of its own.
import { sendAuthed, TokenSource, type TokenProvider } from "./auth.js";
import { Emitter } from "./emitter.js";
import { toChatEvent, StreamEventName, type ChatEvent, type ChatEventKind } from "./events.js";
import { retryRateLimited, seg, type FetchLike, type RateLimitRetry } from "./http.js";
import { SendQueue, newTxnId, roomKey, type QueueOptions, type QueueStorage, type QueueUpdate, type QueuedItem, type SendResult } from "./queue.js";
import { MemoryQueueStorage } from "./storage/memory.js";
import { EventStream, type StreamOptions, type StreamStatus } from "./stream.js";
import type { SSEFrame } from "./sse.js";
import type {
  MediaConfig,
  MessagesResponse,
  PortalInfo,
  Room,
  RoomDetail,
  RoomRef,
  SendRequest,
  SendResponse,
  StreamPayload,
  Ticket,
  UploadResponse,
  Whoami,
} from "./types.js";

export const clientPrefix = "/_openmeet/client/v1";

export interface ChatClientOptions {
  /** The bridge's URL, e.g. "https://chat.example.org"; "" for the page's own origin. */
  baseUrl: string;
  /** OpenMeet's JWT; asked again (refresh: true) once when the bridge answers 401. */
  token: TokenProvider;
  /** fetch to use (default globalThis.fetch). */
  fetch?: FetchLike;
  /** Resume the stream from this position (a saved one, or a history page's). */
  position?: string | number;
  stream?: StreamOptions;
  /** The send queue: its storage (default in memory) and retry backoff. */
  queue?: QueueOptions & { storage?: QueueStorage };
  /**
   * Requests refused with 429 M_LIMIT_EXCEEDED (the bridge's per-user
   * limits) are tried again after the wait the bridge names, this many
   * times (default 3, waits up to 60 s each); then the BridgeError, with
   * its retryAfterMs, is thrown. The send queue does not use this: it
   * waits at least retryAfterMs before each retry, however many.
   */
  rateLimitRetry?: RateLimitRetry;
  /** Abort a request (not the stream) after this many ms (default 30000). */
  requestTimeoutMs?: number;
  /** Reconnect and resend at once when the browser comes back online (default true). */
  watchOnline?: boolean;
}

/** The stream's position is outside the bridge's retention: reload history. */
export interface ResetNotice {
  /** The position the stream goes on from. */
  position?: string;
  reason: string;
}

/** Others' membership of a room changed while the stream was behind: reload its member list. */
export interface MembersNotice {
  roomId: string;
  portal?: PortalInfo;
  position?: number;
  count: number;
}

export interface HistoryPage {
  /** Newest first, as the bridge sends them. */
  events: ChatEvent[];
  chunk: StreamPayload[];
  /** Token for the next (older) page; absent at the start of the room. */
  end?: string;
  /**
   * The stream position this page is consistent with, when the bridge says
   * (a newest page read at position P holds every event of the room up to P).
   */
  position?: string;
}

export interface ChatClientEvents {
  /** Every stream event, typed. */
  event: ChatEvent;
  message: Extract<ChatEvent, { kind: "message" }>;
  edit: Extract<ChatEvent, { kind: "edit" }>;
  reaction: Extract<ChatEvent, { kind: "reaction" }>;
  redaction: Extract<ChatEvent, { kind: "redaction" }>;
  member: Extract<ChatEvent, { kind: "member" }>;
  typing: Extract<ChatEvent, { kind: "typing" }>;
  receipt: Extract<ChatEvent, { kind: "receipt" }>;
  unknown: Extract<ChatEvent, { kind: "unknown" }>;
  reset: ResetNotice;
  members: MembersNotice;
  /** The stream's position moved; save it to resume after a reload. */
  position: string;
  status: StreamStatus;
  /** A queued item was stored, retried, accepted or refused. */
  queue: QueueUpdate;
  /** A frame that could not be read. */
  error: unknown;
}

export interface QueuedSend {
  txnId: string;
  /** Resolves when the bridge accepted it (200 or 202); rejects with SendFailedError on a refusal for good. */
  accepted: Promise<SendResult>;
}

type PathKind = "events" | "groups";

/** The path form of a portal kind. */
export function pathKind(kind: string): PathKind {
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

const toPosition = (p: unknown): string | undefined =>
  typeof p === "number" && Number.isFinite(p) ? String(p) : typeof p === "string" && p !== "" ? p : undefined;

export class ChatClient extends Emitter<ChatClientEvents> {
  private readonly baseUrl: string;
  private readonly fetchImpl: FetchLike;
  private readonly tokens: TokenSource;
  private readonly stream: EventStream;
  private readonly queue: SendQueue;
  private readonly timeoutMs: number;
  private lastStatus: StreamStatus = { state: "closed" };
  // Per room (kind/slug): the position of the newest history page loaded,
  // and the event IDs it holds. Stream events up to that position, or with
  // one of those IDs (pushed to the bridge after the page was read from
  // Synapse), are already in the page and are not emitted again.
  private readonly floors = new Map<string, number>();
  private readonly inPage = new Map<string, Set<string>>();
  private me: Promise<Whoami> | undefined;
  private readonly onOnline = () => {
    this.stream.wake();
    this.queue.kick();
  };
  private watching = false;

  constructor(private readonly opts: ChatClientOptions) {
    super();
    this.baseUrl = opts.baseUrl;
    if (!opts.fetch && typeof globalThis.fetch !== "function") throw new Error("fetch is not available: pass options.fetch");
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.tokens = new TokenSource(opts.token);
    this.timeoutMs = opts.requestTimeoutMs ?? 30000;
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
        },
      },
    );
    this.stream.position = toPosition(opts.position);
    const { storage, ...queueOpts } = opts.queue ?? {};
    this.queue = new SendQueue((item) => this.sendItem(item), storage ?? new MemoryQueueStorage(), (u) => this.emit("queue", u), queueOpts);
  }

  /** The stream's position: what it resumes from. */
  get position(): string | undefined {
    return this.stream.position;
  }

  get status(): StreamStatus {
    return this.lastStatus;
  }

  /**
   * Opens the stream (resuming from position, the constructor's, or the
   * lowest newest-page position of the histories loaded so far) and starts
   * sending what the queue holds, also what an earlier page left in its
   * storage.
   */
  connect(opts: { position?: string | number } = {}): void {
    const from = toPosition(opts.position);
    if (from !== undefined) this.stream.position = from;
    else if (this.stream.position === undefined && this.floors.size > 0) {
      this.stream.position = String(Math.min(...this.floors.values()));
    }
    this.watchOnline(true);
    this.stream.start();
    this.queue.start().catch((err: unknown) => this.emit("error", err));
  }

  /** Closes the stream and stops sending; queued items stay in storage. */
  disconnect(): void {
    this.watchOnline(false);
    this.stream.stop();
    this.queue.stop();
  }

  /** Starts sending the queue without opening the stream. */
  startQueue(): Promise<void> {
    this.watchOnline(true);
    return this.queue.start();
  }

  /** Forgets the cached token: the next request asks the token provider again. */
  clearToken(): void {
    this.tokens.clear();
  }

  async whoami(): Promise<Whoami> {
    this.me ??= this.get<Whoami>("/whoami");
    this.me.catch(() => {
      this.me = undefined;
    });
    return this.me;
  }

  async rooms(): Promise<Room[]> {
    return (await this.get<{ rooms: Room[] }>("/rooms")).rooms;
  }

  /**
   * One room with the user's power level and the level needed to remove
   * other people's events (one's own need none): offer removing others'
   * messages only when powerLevel >= redactLevel.
   */
  async room(room: RoomRef): Promise<RoomDetail> {
    return (await this.call<RoomDetail>("GET", roomPath(room, ""))).body;
  }

  /**
   * A page of a room's history, newest first. Without from it is the newest
   * page; when the bridge says which stream position it is consistent with,
   * stream events of that room up to there are not emitted again.
   */
  async history(room: RoomRef, opts: { from?: string; limit?: number } = {}): Promise<HistoryPage> {
    const query: Record<string, string | number | undefined> = { from: opts.from, limit: opts.limit };
    const { body } = await this.call<MessagesResponse & { stream_pos?: unknown; position?: unknown }>("GET", roomPath(room, "messages"), undefined, query);
    const page: HistoryPage = { chunk: body.chunk, events: body.chunk.map((p) => toChatEvent(p, false)) };
    if (body.end) page.end = body.end;
    const position = toPosition(body.stream_pos ?? body.position);
    if (position !== undefined) page.position = position;
    if (opts.from === undefined) {
      const key = floorKey(room);
      this.inPage.set(key, new Set(page.events.flatMap((e) => (e.eventId ? [e.eventId] : []))));
      if (position !== undefined && /^\d+$/.test(position)) this.floors.set(key, Number(position));
    }
    return page;
  }

  /** The newest history page of each room, e.g. after a reset. */
  async reloadHistory(rooms: RoomRef[], opts: { limit?: number } = {}): Promise<Map<RoomRef, HistoryPage>> {
    const pages = await Promise.all(rooms.map((r) => this.history(r, opts.limit === undefined ? {} : { limit: opts.limit })));
    return new Map(rooms.map((r, i) => [r, pages[i]!]));
  }

  /** Queues a text message; body is the text or the full request. */
  send(room: RoomRef, body: string | SendRequest, opts: { txnId?: string } = {}): Promise<QueuedSend> {
    const req = typeof body === "string" ? { body } : body;
    return this.enqueue(room, "send", { ...req }, opts.txnId);
  }

  /** Queues an edit of one of the user's messages. */
  edit(room: RoomRef, eventId: string, body: string, opts: { formattedBody?: string; txnId?: string } = {}): Promise<QueuedSend> {
    const req: Record<string, unknown> = { event_id: eventId, body };
    if (opts.formattedBody !== undefined) req.formatted_body = opts.formattedBody;
    return this.enqueue(room, "edit", req, opts.txnId);
  }

  /** Queues a reaction; one already there counts as accepted (duplicate: true). */
  react(room: RoomRef, eventId: string, key: string, opts: { txnId?: string } = {}): Promise<QueuedSend> {
    return this.enqueue(room, "react", { event_id: eventId, key }, opts.txnId);
  }

  /** Queues a redaction: removes a message, or takes back a reaction (its event ID). */
  redact(room: RoomRef, eventId: string, opts: { reason?: string; txnId?: string } = {}): Promise<QueuedSend> {
    const req: Record<string, unknown> = { event_id: eventId };
    if (opts.reason !== undefined) req.reason = opts.reason;
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
  async upload(room: RoomRef, file: Blob, opts: { filename?: string; txnId?: string; signal?: AbortSignal } = {}): Promise<UploadResponse> {
    const txnId = opts.txnId ?? newTxnId();
    const name: unknown = (file as unknown as { name?: unknown }).name;
    const filename = opts.filename ?? (typeof name === "string" ? name : undefined);
    const spec: Parameters<typeof sendAuthed>[3] = {
      method: "PUT",
      path: clientPrefix + roomPath(room, "upload/" + seg(txnId)),
      query: { filename },
      rawBody: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
    };
    if (opts.signal) spec.signal = opts.signal;
    const attempt = () => sendAuthed<UploadResponse>(this.fetchImpl, this.baseUrl, this.tokens, spec);
    return (await retryRateLimited(attempt, this.opts.rateLimitRetry, opts.signal)).body;
  }

  /** What may be uploaded: the size limit (the bridge's or Synapse's, the smaller) and the allowed types. */
  async mediaConfig(): Promise<MediaConfig> {
    return this.get<MediaConfig>("/media/config");
  }

  /** Items not yet accepted by the bridge (render them as pending), of one room when given. */
  pending(room?: RoomRef): QueuedItem[] {
    return this.queue.pending(room ? { kind: pathKind(room.kind), slug: room.slug } : undefined);
  }

  /** Sets the typing state; not queued (a stale typing notice is worthless). */
  async typing(room: RoomRef, typing: boolean, timeoutMs?: number): Promise<void> {
    const body: Record<string, unknown> = { typing };
    if (timeoutMs !== undefined) body.timeout_ms = timeoutMs;
    await this.call("PUT", roomPath(room, "typing"), body);
  }

  /** Marks the room read up to eventId. */
  async markRead(room: RoomRef, eventId: string): Promise<void> {
    await this.call("POST", roomPath(room, "receipt"), { event_id: eventId });
  }

  /** A single-use ticket for an EventSource of one's own. */
  async ticket(): Promise<Ticket> {
    return (await this.call<Ticket>("POST", "/events/ticket")).body;
  }

  private async enqueue(room: RoomRef, action: QueuedItem["action"], body: Record<string, unknown>, txnId?: string): Promise<QueuedSend> {
    return this.queue.enqueue({ kind: pathKind(room.kind), slug: room.slug }, action, body, txnId);
  }

  private sendItem(item: QueuedItem) {
    // Once: the queue itself waits out a 429's retryAfterMs.
    return this.callOnce<SendResponse | undefined>("PUT", `/rooms/${seg(item.room.kind)}/${seg(item.room.slug)}/${item.action}/${seg(item.txnId)}`, item.body);
  }

  private async get<T>(path: string): Promise<T> {
    return (await this.call<T>("GET", path)).body;
  }

  /** A request, tried again after a 429's wait (opts.rateLimitRetry). */
  private call<T>(method: "GET" | "PUT" | "POST", path: string, body?: unknown, query?: Record<string, string | number | undefined>) {
    return retryRateLimited(() => this.callOnce<T>(method, path, body, query), this.opts.rateLimitRetry);
  }

  private callOnce<T>(method: "GET" | "PUT" | "POST", path: string, body?: unknown, query?: Record<string, string | number | undefined>) {
    const spec: Parameters<typeof sendAuthed>[3] = { method, path: clientPrefix + path };
    if (body !== undefined) spec.body = body;
    if (query !== undefined) spec.query = query;
    if (this.timeoutMs > 0 && typeof AbortSignal.timeout === "function") spec.signal = AbortSignal.timeout(this.timeoutMs);
    return sendAuthed<T>(this.fetchImpl, this.baseUrl, this.tokens, spec);
  }

  private onFrame(f: SSEFrame): void {
    let data: unknown;
    try {
      data = JSON.parse(f.data);
    } catch (err) {
      this.emit("error", new Error(`stream frame ${f.event} is not JSON`, { cause: err }));
      return;
    }
    const d = (typeof data === "object" && data !== null ? data : {}) as Record<string, unknown>;
    if (f.event === StreamEventName.Reset) {
      this.floors.clear();
      this.inPage.clear();
      const notice: ResetNotice = { reason: typeof d.reason === "string" ? d.reason : "reset" };
      const position = toPosition(d.stream_pos) ?? (f.hasId ? f.lastEventId : undefined);
      if (position !== undefined) notice.position = position;
      this.emit("reset", notice);
      return;
    }
    if (f.event === StreamEventName.Members) {
      const notice: MembersNotice = { roomId: String(d.room_id ?? ""), count: typeof d.count === "number" ? d.count : 0 };
      if (d.portal) notice.portal = d.portal as PortalInfo;
      if (typeof d.stream_pos === "number") notice.position = d.stream_pos;
      this.emit("members", notice);
      return;
    }
    if (typeof d.event !== "object" || d.event === null) {
      // No Matrix event: a position frame (whose id: the stream has taken),
      // or a payload the bridge could not encode.
      if (this.stream.position === undefined) this.stream.position = toPosition(d.stream_pos);
      if (typeof d.error === "string") this.emit("error", new Error(`stream: ${d.error}`));
      return;
    }
    const payload = d as unknown as StreamPayload;
    const pos = f.hasId && /^\d+$/.test(f.lastEventId) ? Number(f.lastEventId) : undefined;
    const ev = toChatEvent(payload, true, pos);
    if (payload.portal && this.inPage.size > 0) {
      const key = floorKey(payload.portal);
      const floor = this.floors.get(key);
      if (ev.position !== undefined && floor !== undefined && ev.position <= floor) return;
      if (ev.eventId !== undefined && this.inPage.get(key)?.has(ev.eventId)) return;
    }
    this.emit("event", ev);
    this.emit(ev.kind as ChatEventKind, ev as never);
  }

  private watchOnline(on: boolean): void {
    if (this.opts.watchOnline === false) return;
    const g = globalThis as { addEventListener?: (t: string, l: () => void) => void; removeEventListener?: (t: string, l: () => void) => void };
    if (typeof g.addEventListener !== "function" || on === this.watching) return;
    if (on) g.addEventListener("online", this.onOnline);
    else g.removeEventListener?.("online", this.onOnline);
    this.watching = on;
  }
}

function roomPath(room: RoomRef, rest: string): string {
  const path = `/rooms/${pathKind(room.kind)}/${seg(room.slug)}`;
  return rest === "" ? path : `${path}/${rest}`;
}

function floorKey(room: { kind: string; slug: string }): string {
  const kind = room.kind === "event" || room.kind === "group" ? room.kind + "s" : room.kind;
  return roomKey({ kind, slug: room.slug });
}
