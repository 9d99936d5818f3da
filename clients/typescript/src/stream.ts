// The event stream: one connection, resumed by position after every cut,
// with backoff between tries. Two transports: fetch (default; sends the
// bearer token and Last-Event-ID, sees status codes and Retry-After, notices
// a silent connection by the missing heartbeats) and EventSource with a
// single-use ticket (for pages that want the browser's own SSE, or cookies).
import { TokenSource } from "./auth.js";
import { Backoff, Waker, type BackoffOptions } from "./backoff.js";
import { BridgeError, ErrCode } from "./errors.js";
import { streamEventNames } from "./events.js";
import { asNetworkError, buildURL, errorFrom, isAbort, type FetchLike } from "./http.js";
import { SSEParser, type SSEFrame } from "./sse.js";
import type { Ticket } from "./types.js";

export const eventsPath = "/_openmeet/client/v1/events";

export type StreamState = "connecting" | "open" | "reconnecting" | "closed";

export interface StreamStatus {
  state: StreamState;
  /** While reconnecting: the wait before the next try, in ms. */
  retryInMs?: number;
  /** Why the last connection ended or failed, if it did. */
  error?: unknown;
}

/** The constructor of EventSource (the browser's, or a stand-in). */
export type EventSourceCtor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

export interface EventSourceLike {
  onopen: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  addEventListener(type: string, listener: (ev: { data: string; lastEventId: string }) => void): void;
  close(): void;
}

export interface StreamOptions {
  /** "fetch" (default) or "eventsource". */
  transport?: "fetch" | "eventsource";
  /**
   * Reconnect when nothing (not even a heartbeat comment) arrived for this
   * long, in ms (fetch transport; default 60000, over twice the bridge's
   * default 25 s heartbeat).
   */
  idleTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** EventSource: send cookies (for `client_api.ticket_cookie`). */
  withCredentials?: boolean;
  /** EventSource: put the ticket in the URL (default true); false relies on the ticket cookie alone. */
  ticketInQuery?: boolean;
  /** The EventSource constructor; default globalThis.EventSource. */
  EventSource?: EventSourceCtor;
}

export interface StreamDeps {
  baseUrl: string;
  fetch: FetchLike;
  tokens: TokenSource;
  /** Gets a single-use ticket (EventSource transport). */
  ticket(): Promise<Ticket>;
}

export interface StreamSink {
  frame(frame: SSEFrame): void;
  /** The stream's position moved (an id: line). */
  position(position: string): void;
  status(status: StreamStatus): void;
}

/** Thrown into the status when the bridge refuses the stream for good (401 after a refresh, 403). */
function fatal(err: unknown): boolean {
  return err instanceof BridgeError && (err.status === 401 || err.status === 403);
}

export class EventStream {
  private pos: string | undefined;
  private running = false;
  private stopper: AbortController | undefined;
  private readonly waker = new Waker();
  private readonly backoff: Backoff;
  private readonly idleTimeoutMs: number;

  constructor(
    private readonly deps: StreamDeps,
    private readonly opts: StreamOptions,
    private readonly sink: StreamSink,
  ) {
    this.backoff = new Backoff(opts.backoff);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60000;
  }

  /** The last position seen: what a reconnect sends as Last-Event-ID. */
  get position(): string | undefined {
    return this.pos;
  }

  set position(p: string | undefined) {
    this.pos = p === "" ? undefined : p;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Opens the stream and keeps it open until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopper = new AbortController();
    void this.loop(this.stopper.signal);
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.stopper?.abort();
    this.sink.status({ state: "closed" });
  }

  /** Skips the wait before the next try (the browser is back online). */
  wake(): void {
    this.waker.wake();
  }

  private async loop(stop: AbortSignal): Promise<void> {
    this.sink.status({ state: "connecting" });
    while (!stop.aborted) {
      let error: unknown;
      let hint: number | undefined;
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
        if (error.status === 400 && error.errcode === ErrCode.InvalidParam && this.pos !== undefined) {
          // The bridge does not know our position: start over, as after a reset.
          this.pos = undefined;
          this.sink.frame({ event: "reset", data: JSON.stringify({ reason: error.message }), lastEventId: "", hasId: false });
          continue;
        }
        hint = error.retryAfterMs;
      }
      const retryInMs = this.backoff.next(hint);
      const status: StreamStatus = { state: "reconnecting", retryInMs };
      if (error !== undefined) status.error = error;
      this.sink.status(status);
      await this.waker.wait(retryInMs, stop);
    }
  }

  private parser(): SSEParser {
    return new SSEParser(
      {
        onFrame: (f) => this.sink.frame(f),
        onId: (id) => {
          this.pos = id === "" ? undefined : id;
          if (id !== "") this.sink.position(id);
        },
        onRetry: (ms) => {
          this.backoff.initialMs = ms;
        },
      },
      this.pos ?? "",
    );
  }

  private async open(signal: AbortSignal, token: string): Promise<Response> {
    const headers: Record<string, string> = { Accept: "text/event-stream", Authorization: `Bearer ${token}` };
    if (this.pos !== undefined) headers["Last-Event-ID"] = this.pos;
    try {
      return await this.deps.fetch(buildURL(this.deps.baseUrl, eventsPath), { headers, signal, cache: "no-store" });
    } catch (err) {
      throw asNetworkError(err);
    }
  }

  private async viaFetch(stop: AbortSignal): Promise<void> {
    const conn = new AbortController();
    const onStop = () => conn.abort();
    stop.addEventListener("abort", onStop, { once: true });
    try {
      let token = await this.deps.tokens.get();
      let resp = await this.open(conn.signal, token);
      if (resp.status === 401) {
        await resp.body?.cancel().catch(() => {});
        token = await this.deps.tokens.refresh(token);
        resp = await this.open(conn.signal, token);
      }
      if (resp.status !== 200) {
        const text = await resp.text().catch(() => "");
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: errorFrom keeps the text
        }
        throw errorFrom(resp, body);
      }
      const type = resp.headers.get("Content-Type") ?? "";
      if (!type.startsWith("text/event-stream") || !resp.body) {
        await resp.body?.cancel().catch(() => {});
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

  private async read(body: ReadableStream<Uint8Array>, conn: AbortController): Promise<void> {
    const parser = this.parser();
    const decoder = new TextDecoder("utf-8");
    const reader = body.getReader();
    let idle: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => conn.abort(), this.idleTimeoutMs);
    };
    arm();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
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

  private async viaEventSource(stop: AbortSignal): Promise<void> {
    const ES = this.opts.EventSource ?? (globalThis as { EventSource?: EventSourceCtor }).EventSource;
    if (!ES) throw new Error("EventSource is not available; use the fetch transport");
    const { ticket } = await this.deps.ticket();
    if (stop.aborted) return;
    const query: Record<string, string | undefined> = { last_event_id: this.pos };
    if (this.opts.ticketInQuery !== false) query.ticket = ticket;
    const es = new ES(buildURL(this.deps.baseUrl, eventsPath, query), { withCredentials: this.opts.withCredentials ?? false });
    await new Promise<void>((resolve) => {
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
      // EventSource's own retry would present the spent ticket again: close
      // it and come back through the loop with a new ticket and the position.
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
}
