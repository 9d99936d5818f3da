// The offline send queue: every send, edit, reaction and redaction is
// stored under its txn id before it is tried, and tried again with the same
// txn id (the bridge is idempotent on it) until the bridge accepts it (200,
// or 202: queued in the bridge's outbox) or refuses it for good. One room's
// items leave in order, one at a time; rooms do not wait for each other.
import { Backoff, Waker, type BackoffOptions } from "./backoff.js";
import { BridgeError, ErrCode, SendFailedError } from "./errors.js";
import type { Answer } from "./http.js";
import type { SendResponse } from "./types.js";

export type QueuedAction = "send" | "edit" | "react" | "redact";

/** One queued request, as stored. */
export interface QueuedItem {
  txnId: string;
  /** Enqueue order, kept across restarts. */
  seq: number;
  /** The room: kind as in paths ("events" or "groups") and slug. */
  room: { kind: string; slug: string };
  action: QueuedAction;
  /** The request body, e.g. {body} for a send. */
  body: Record<string, unknown>;
  /** When it was enqueued (ms since the epoch). */
  createdAt: number;
  /** Tries so far. */
  attempts: number;
  /** The last try's error message, if it failed. */
  lastError?: string;
}

/**
 * Where queued items live until the bridge has them. Keep one storage per
 * signed-in user: items are sent with whatever token the client has.
 */
export interface QueueStorage {
  /** Every stored item, in any order. */
  load(): Promise<QueuedItem[]>;
  /** Stores an item, or replaces the one with its txnId. */
  put(item: QueuedItem): Promise<void>;
  delete(txnId: string): Promise<void>;
}

export interface SendResult {
  txnId: string;
  /** "sent": Synapse has it (200). "pending": in the bridge's outbox (202), on its way. */
  state: "sent" | "pending";
  status: 200 | 202;
  eventId?: string;
  /** A reaction that was already there (the bridge refused it as a duplicate). */
  duplicate?: boolean;
}

export type QueueUpdate =
  | { state: "queued"; item: QueuedItem }
  | { state: "retrying"; item: QueuedItem; error: unknown; retryInMs: number }
  | { state: "accepted"; item: QueuedItem; result: SendResult }
  | { state: "failed"; item: QueuedItem; error: SendFailedError };

export interface QueueOptions {
  backoff?: BackoffOptions;
  /** Makes txn ids; default a random UUID. */
  txnId?: () => string;
  /** Clock, for tests. */
  now?: () => number;
}

/** Sends one item; throws BridgeError or NetworkError. */
export type Sender = (item: QueuedItem) => Promise<Answer<SendResponse | undefined>>;

interface RoomLine {
  items: QueuedItem[];
  running: boolean;
  backoff: Backoff;
}

interface Waiting {
  promise: Promise<SendResult>;
  resolve(r: SendResult): void;
  reject(e: unknown): void;
}

export class SendQueue {
  private readonly rooms = new Map<string, RoomLine>();
  private readonly byTxn = new Map<string, QueuedItem>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly waker = new Waker();
  private nextSeq = 1;
  private loaded: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly sender: Sender,
    private readonly storage: QueueStorage,
    private readonly onUpdate: (u: QueueUpdate) => void,
    private readonly opts: QueueOptions = {},
  ) {}

  /** Loads what an earlier run left and starts sending it. Safe to call again. */
  start(): Promise<void> {
    this.stopped = false;
    return this.whenLoaded().then(() => {
      for (const key of this.rooms.keys()) void this.pump(key);
    });
  }

  /** Stops sending; queued items stay stored. An in-flight request still completes. */
  stop(): void {
    this.stopped = true;
    this.waker.wake();
  }

  /** Ends every backoff wait now: the network is back. */
  kick(): void {
    this.waker.wake();
  }

  /**
   * Stores an item and queues it. The promise resolves once it is stored,
   * with its txn id and a promise of the bridge's acceptance (which rejects
   * with SendFailedError when the bridge refuses it for good). Enqueueing a
   * txn id that is already queued returns that item.
   */
  async enqueue(
    room: QueuedItem["room"],
    action: QueuedAction,
    body: Record<string, unknown>,
    txnId?: string,
  ): Promise<{ txnId: string; accepted: Promise<SendResult> }> {
    await this.whenLoaded();
    const id = txnId ?? this.opts.txnId?.() ?? newTxnId();
    if (this.byTxn.has(id)) return { txnId: id, accepted: this.promiseFor(id) };
    const item: QueuedItem = {
      txnId: id,
      seq: this.nextSeq++,
      room: { kind: room.kind, slug: room.slug },
      action,
      body,
      createdAt: (this.opts.now ?? Date.now)(),
      attempts: 0,
    };
    await this.storage.put(item);
    this.add(item);
    const accepted = this.promiseFor(id);
    this.onUpdate({ state: "queued", item });
    if (!this.stopped) void this.pump(roomKey(item.room));
    return { txnId: id, accepted };
  }

  /** Items not yet accepted, in order; of one room when given. */
  pending(room?: { kind: string; slug: string }): QueuedItem[] {
    if (room) return [...(this.rooms.get(roomKey(room))?.items ?? [])];
    return [...this.byTxn.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Resolves once every queued item is accepted or failed (tests, page unload). */
  async drained(): Promise<void> {
    while (this.byTxn.size > 0) {
      await Promise.allSettled([...this.byTxn.keys()].map((t) => this.promiseFor(t)));
    }
  }

  private promiseFor(txnId: string): Promise<SendResult> {
    const known = this.waiting.get(txnId);
    if (known) return known.promise;
    let settle!: Pick<Waiting, "resolve" | "reject">;
    const promise = new Promise<SendResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // Nobody has to await it: a refusal is also reported through onUpdate.
    promise.catch(() => {});
    this.waiting.set(txnId, { promise, ...settle });
    return promise;
  }

  // Loads the storage once; a failed load (storage unavailable) is tried
  // again by the next call.
  private whenLoaded(): Promise<void> {
    this.loaded ??= this.load().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  private async load(): Promise<void> {
    const items = (await this.storage.load()).sort((a, b) => a.seq - b.seq);
    for (const item of items) {
      if (this.byTxn.has(item.txnId)) continue;
      this.add(item);
      this.nextSeq = Math.max(this.nextSeq, item.seq + 1);
    }
  }

  private add(item: QueuedItem): void {
    const key = roomKey(item.room);
    let line = this.rooms.get(key);
    if (!line) {
      line = { items: [], running: false, backoff: new Backoff(this.opts.backoff) };
      this.rooms.set(key, line);
    }
    line.items.push(item);
    this.byTxn.set(item.txnId, item);
  }

  private async pump(key: string): Promise<void> {
    const line = this.rooms.get(key);
    if (!line || line.running) return;
    line.running = true;
    try {
      while (!this.stopped && line.items.length > 0) {
        const item = line.items[0]!;
        const outcome = await this.attempt(item);
        if (outcome.kind === "retry") {
          if (this.stopped) break;
          const retryInMs = line.backoff.next(outcome.hint);
          this.onUpdate({ state: "retrying", item, error: outcome.error, retryInMs });
          await this.waker.wait(retryInMs);
          continue;
        }
        line.backoff.reset();
        // Should the delete fail, a restart sends the item again: harmless,
        // the bridge answers a known txn id with what it did the first time.
        await this.storage.delete(item.txnId).catch(() => {});
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
    // Stopped and started again while this pump was winding down: go on.
    else if (!this.stopped) void this.pump(key);
  }

  private async attempt(
    item: QueuedItem,
  ): Promise<
    | { kind: "accepted"; result: SendResult }
    | { kind: "failed"; error: SendFailedError }
    | { kind: "retry"; error: unknown; hint?: number }
  > {
    item.attempts++;
    let answer: Answer<SendResponse | undefined>;
    try {
      answer = await this.sender(item);
    } catch (err) {
      item.lastError = err instanceof Error ? err.message : String(err);
      await this.storage.put(item).catch(() => {});
      return classifyError(item, err);
    }
    const result: SendResult = {
      txnId: item.txnId,
      state: answer.status === 202 ? "pending" : "sent",
      status: answer.status === 202 ? 202 : 200,
    };
    if (answer.body?.event_id) result.eventId = answer.body.event_id;
    return { kind: "accepted", result };
  }
}

function classifyError(
  item: QueuedItem,
  err: unknown,
): { kind: "accepted"; result: SendResult } | { kind: "failed"; error: SendFailedError } | { kind: "retry"; error: unknown; hint?: number } {
  if (!(err instanceof BridgeError)) return { kind: "retry", error: err };
  const body = (typeof err.body === "object" && err.body !== null ? err.body : {}) as Partial<SendResponse>;
  const outboxFailed = body.state === "failed";
  const reason = outboxFailed && body.error ? body.error : err.message;
  if (item.action === "react" && (err.errcode === ErrCode.DuplicateAnnotation || reason.includes(ErrCode.DuplicateAnnotation))) {
    return { kind: "accepted", result: { txnId: item.txnId, state: "sent", status: 200, duplicate: true } };
  }
  if (outboxFailed) {
    // The bridge's outbox gave up (Synapse refused it); the same txn id
    // would get the same answer.
    return { kind: "failed", error: new SendFailedError(item.txnId, reason, err) };
  }
  if (err.transient || err.status === 401) {
    // 401 after a token refresh: the session may come back; keep the message.
    const out: { kind: "retry"; error: unknown; hint?: number } = { kind: "retry", error: err };
    if (err.retryAfterMs !== undefined) out.hint = err.retryAfterMs;
    return out;
  }
  return { kind: "failed", error: new SendFailedError(item.txnId, reason, err) };
}

export function roomKey(room: { kind: string; slug: string }): string {
  return `${room.kind}/${room.slug}`;
}

/** A random txn id: a UUID where the platform has one. */
export function newTxnId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
