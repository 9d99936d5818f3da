import assert from "node:assert/strict";
import type http from "node:http";
import { describe, test } from "node:test";
import { ChatClient, type ResetNotice } from "../src/chat.js";
import { BridgeError } from "../src/errors.js";
import type { ChatEvent } from "../src/events.js";
import { SSEParser } from "../src/sse.js";
import type { EventSourceLike, StreamStatus } from "../src/stream.js";
import { deferred, json, serve, sseHead, waitFor, type Recorded } from "./helpers.js";

const eventsPath = "/_openmeet/client/v1/events";
const portal = { tenant: "t", kind: "event", slug: "party", name: "Party" };
const ada = { user_id: "@openmeet_t_ada:localhost", displayname: "Ada", slug: "ada" };

function frame(id: number | undefined, name: string, data: unknown): string {
  return `${id ? `id: ${id}\n` : ""}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

function message(id: number, body: string, extra: Record<string, unknown> = {}) {
  return frame(id, "m.room.message", {
    stream_pos: id,
    room_id: "!r:localhost",
    portal,
    sender: ada,
    ...extra,
    event: { type: "m.room.message", event_id: `$m${id}`, room_id: "!r:localhost", sender: ada.user_id, origin_server_ts: 1000 + id, content: { msgtype: "m.text", body } },
  });
}

type Conn = (req: Recorded, res: http.ServerResponse) => void | Promise<void>;

/**
 * A bridge whose nth stream connection is served by conns[n] (the last one
 * serves the rest); history and tickets as given.
 */
async function bridge(t: { after(fn: () => unknown): void }, conns: Conn[], extra?: (req: Recorded, res: http.ServerResponse) => boolean) {
  let n = 0;
  const open = new Set<http.ServerResponse>();
  const server = await serve(async (req, res) => {
    if (extra?.(req, res)) return;
    if (req.path === eventsPath) {
      const conn = conns[Math.min(n++, conns.length - 1)]!;
      open.add(res);
      res.on("close", () => open.delete(res));
      await conn(req, res);
      return;
    }
    json(res, 404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
  });
  t.after(() => server.close());
  return { server, streams: () => server.requests.filter((r) => r.path === eventsPath), open };
}

function chat(url: string, opts: Partial<ConstructorParameters<typeof ChatClient>[0]> = {}) {
  const c = new ChatClient({
    baseUrl: url,
    token: () => "jwt",
    watchOnline: false,
    ...opts,
    stream: { backoff: { initialMs: 10, maxMs: 50 }, ...opts.stream },
  });
  const events: ChatEvent[] = [];
  const positions: string[] = [];
  const statuses: StreamStatus[] = [];
  c.on("event", (e) => events.push(e));
  c.on("position", (p) => positions.push(p));
  c.on("status", (s) => statuses.push(s));
  return { c, events, positions, statuses };
}

describe("event stream", () => {
  test("a cut right after opening resumes from the first frame's position: nothing missed, nothing twice", async (t) => {
    const { server, streams } = await bridge(t, [
      // The first frame names the position before any live event; then the network cuts.
      (_req, res) => {
        sseHead(res);
        res.end("retry: 20\nid: 10\n: connected\n\n");
      },
      // Two messages were sent meanwhile; the bridge replays them after 10.
      (req, res) => {
        sseHead(res);
        res.write(": connected\n\n");
        if (req.headers["last-event-id"] === "10") res.write(message(11, "during the cut") + message(12, "also during"));
      },
    ]);
    const { c, events, positions } = chat(server.url);
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => events.length === 2, "two messages");
    assert.deepEqual(
      events.map((e) => [e.kind, e.position, e.kind === "message" ? e.body : ""]),
      [
        ["message", 11, "during the cut"],
        ["message", 12, "also during"],
      ],
    );
    assert.deepEqual(positions, ["10", "11", "12"]);
    assert.equal(c.position, "12");
    const [first, second] = streams();
    assert.equal(first!.headers["last-event-id"], undefined);
    assert.equal(first!.headers.authorization, "Bearer jwt");
    assert.equal(first!.headers.accept, "text/event-stream");
    assert.equal(second!.headers["last-event-id"], "10");
  });

  test("types come from the JSON, not from the event: name", async (t) => {
    const base = { room_id: "!r:localhost", portal, sender: ada };
    const ev = (type: string, content: Record<string, unknown>, more: Record<string, unknown> = {}) => ({
      type,
      event_id: `$${type}`,
      sender: ada.user_id,
      content,
      ...more,
    });
    const frames = [
      frame(1, "m.room.message", { ...base, stream_pos: 1, txn_id: "txn-9", event: ev("m.room.message", { msgtype: "m.text", body: "hi", "m.relates_to": { "m.in_reply_to": { event_id: "$x" } } }) }),
      frame(2, "m.room.message", {
        ...base,
        stream_pos: 2,
        event: ev("m.room.message", { body: "* hey", "m.new_content": { body: "hey" }, "m.relates_to": { rel_type: "m.replace", event_id: "$m1" } }),
      }),
      frame(3, "m.reaction", { ...base, stream_pos: 3, event: ev("m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: "$m1", key: "👍" } }) }),
      frame(4, "m.room.redaction", { ...base, stream_pos: 4, event: ev("m.room.redaction", { redacts: "$m3" }) }),
      frame(5, "m.room.redaction", { ...base, stream_pos: 5, event: ev("m.room.redaction", {}, { redacts: "$m4" }) }),
      frame(6, "m.room.member", { ...base, stream_pos: 6, event: ev("m.room.member", { membership: "join", displayname: "Bob" }, { state_key: "@bob:localhost" }) }),
      frame(undefined, "m.typing", { room_id: "!r:localhost", portal, users: [ada], event: { type: "m.typing", content: { user_ids: [ada.user_id] } } }),
      frame(undefined, "m.receipt", { room_id: "!r:localhost", portal, users: [ada], event: { type: "m.receipt", content: { $m1: { "m.read": { [ada.user_id]: { ts: 5 } } } } } }),
      // Other types arrive under the generic name; and the name never decides the type.
      frame(7, "m.event", { ...base, stream_pos: 7, event: ev("m.room.topic", { topic: "Bring food" }, { state_key: "" }) }),
      frame(8, "m.room.message", { ...base, stream_pos: 8, event: ev("m.room.name", { name: "Not a message" }) }),
      frame(9, "m.event", { ...base, stream_pos: 9, event: ev("m.room.message", { msgtype: "m.text", body: "named generically" }) }),
    ];
    const { server } = await bridge(t, [
      (_req, res) => {
        sseHead(res);
        res.write(frames.join(""));
      },
    ]);
    const { c, events } = chat(server.url);
    const kinds: string[] = [];
    for (const k of ["message", "edit", "reaction", "redaction", "member", "typing", "receipt", "unknown"] as const) c.on(k, () => kinds.push(k));
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => events.length === frames.length, "every frame");
    assert.deepEqual(
      events.map((e) => e.kind),
      ["message", "edit", "reaction", "redaction", "redaction", "member", "typing", "receipt", "unknown", "unknown", "message"],
    );
    assert.deepEqual(kinds, events.map((e) => e.kind));
    const [msg, edit, reaction, red11, red10, member, typing, receipt, topic] = events;
    assert.ok(msg?.kind === "message" && msg.body === "hi" && msg.replyTo === "$x" && msg.txnId === "txn-9" && msg.sender?.displayname === "Ada");
    assert.ok(edit?.kind === "edit" && edit.targetEventId === "$m1" && edit.body === "hey");
    assert.ok(reaction?.kind === "reaction" && reaction.targetEventId === "$m1" && reaction.key === "👍");
    assert.ok(red11?.kind === "redaction" && red11.redacts === "$m3");
    assert.ok(red10?.kind === "redaction" && red10.redacts === "$m4");
    assert.ok(member?.kind === "member" && member.userId === "@bob:localhost" && member.membership === "join" && member.displayname === "Bob");
    assert.ok(typing?.kind === "typing" && typing.userIds[0] === ada.user_id && typing.users[0]?.displayname === "Ada" && typing.position === undefined);
    assert.ok(receipt?.kind === "receipt");
    assert.deepEqual(receipt.receipts, [{ eventId: "$m1", userId: ada.user_id, receiptType: "m.read", ts: 5 }]);
    assert.ok(topic?.kind === "unknown" && topic.type === "m.room.topic" && topic.position === 7 && topic.live);
  });

  test("reset: the app is told to reload history, and the stream goes on from the new position", async (t) => {
    const { server, streams } = await bridge(t, [
      (_req, res) => {
        sseHead(res);
        res.end(frame(50, "reset", { reason: "position outside the stream's retention; reload history", stream_pos: 50 }));
      },
      (_req, res) => {
        sseHead(res);
        res.write(message(51, "after the reset"));
      },
    ]);
    const { c, events } = chat(server.url, { position: 3 });
    const resets: ResetNotice[] = [];
    c.on("reset", (r) => resets.push(r));
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => events.length === 1, "the message after the reset");
    assert.deepEqual(resets, [{ reason: "position outside the stream's retention; reload history", position: "50" }]);
    assert.deepEqual(streams().map((r) => r.headers["last-event-id"]), ["3", "50"]);
  });

  test("a position the bridge refuses (400) is a reset: start over without it", async (t) => {
    const { server, streams } = await bridge(t, [
      (_req, res) => json(res, 400, { errcode: "M_INVALID_PARAM", error: "Last-Event-ID must be a stream position" }),
      (_req, res) => {
        sseHead(res);
        res.write("id: 7\n\n");
      },
    ]);
    const { c, positions } = chat(server.url, { position: "bogus" });
    const resets: ResetNotice[] = [];
    c.on("reset", (r) => resets.push(r));
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => positions.length === 1, "the new position");
    assert.equal(resets.length, 1);
    assert.deepEqual(streams().map((r) => r.headers["last-event-id"]), ["bogus", undefined]);
    assert.equal(c.position, "7");
  });

  test("backoff honours retry_after_ms and Retry-After", async (t) => {
    const { server, streams } = await bridge(t, [
      (_req, res) => json(res, 429, { errcode: "M_LIMIT_EXCEEDED", error: "Too many new streams", retry_after_ms: 250 }, { "Retry-After": "1" }),
      (_req, res) => json(res, 503, { errcode: "M_LIMIT_EXCEEDED", error: "Too many open streams" }, { "Retry-After": "1" }),
      (_req, res) => {
        sseHead(res);
        res.write(": connected\n\n");
      },
    ]);
    const { c, statuses } = chat(server.url);
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => statuses.some((s) => s.state === "open"), "the stream to open", 5000);
    const waits = statuses.filter((s) => s.state === "reconnecting").map((s) => s.retryInMs!);
    assert.equal(waits.length, 2);
    assert.ok(waits[0]! >= 250 && waits[0]! < 1000, `waited ${waits[0]} ms for retry_after_ms 250`);
    assert.ok(waits[1]! >= 1000, `waited ${waits[1]} ms for Retry-After: 1`);
    const errors = statuses.filter((s) => s.state === "reconnecting").map((s) => (s.error as BridgeError).status);
    assert.deepEqual(errors, [429, 503]);
    assert.equal(streams().length, 3);
  });

  test("401 on the stream refreshes the token once; a second 401 closes it", async (t) => {
    const { server, streams } = await bridge(t, [
      (req, res) => {
        if (req.headers.authorization !== "Bearer fresh") return json(res, 401, { errcode: "M_UNKNOWN_TOKEN", error: "expired" });
        sseHead(res);
        res.write("id: 1\n\n");
      },
    ]);
    const refreshes: boolean[] = [];
    const { c, positions } = chat(server.url, {
      token: ({ refresh }) => {
        refreshes.push(refresh);
        return refresh ? "fresh" : "old";
      },
    });
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => positions.length === 1, "the stream");
    assert.deepEqual(refreshes, [false, true]);
    assert.equal(streams().length, 2);

    const denied = await bridge(t, [(_req, res) => json(res, 401, { errcode: "M_UNKNOWN_TOKEN", error: "signed out" })]);
    const d = chat(denied.server.url);
    const closed = deferred<StreamStatus>();
    d.c.on("status", (s) => s.state === "closed" && closed.resolve(s));
    d.c.connect();
    const status = await closed.promise;
    assert.ok(status.error instanceof BridgeError && status.error.status === 401);
    assert.equal(denied.streams().length, 2);
  });

  test("a silent connection (no heartbeat) is dropped and resumed", async (t) => {
    const { server, streams } = await bridge(t, [
      (_req, res) => {
        sseHead(res);
        res.write("id: 4\n\n"); // then nothing, not even heartbeats
      },
      (_req, res) => {
        sseHead(res);
        res.write(message(5, "after the silence"));
      },
    ]);
    const { c, events } = chat(server.url, { stream: { idleTimeoutMs: 150 } });
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => events.length === 1, "the message");
    assert.deepEqual(streams().map((r) => r.headers["last-event-id"]), [undefined, "4"]);
  });

  test("history names its position: the stream starts there and repeats nothing the page holds", async (t) => {
    const { server, streams } = await bridge(
      t,
      [
        (_req, res) => {
          sseHead(res);
          // A bridge that replays from a lower position than the page's (another room's) still sends 20.
          // 22 was in the page too: Synapse had it before its push reached the bridge's log.
          res.write(message(20, "in the page") + message(21, "new") + message(22, "pushed late"));
        },
      ],
      (req, res) => {
        if (!req.path.endsWith("/messages")) return false;
        json(res, 200, {
          chunk: [
            { room_id: "!r:localhost", portal, sender: ada, event: { type: "m.room.message", event_id: "$m22", content: { body: "pushed late" } } },
            { room_id: "!r:localhost", portal, sender: ada, event: { type: "m.room.message", event_id: "$m20", content: { body: "in the page" } } },
            { room_id: "!r:localhost", portal, sender: ada, event: { type: "m.reaction", event_id: "$r", content: { "m.relates_to": { rel_type: "m.annotation", event_id: "$m20", key: "x" } } } },
          ],
          end: "t_older",
          stream_pos: 20,
        });
        return true;
      },
    );
    const { c, events } = chat(server.url);
    const page = await c.history({ kind: "event", slug: "party" }, { limit: 2 });
    assert.equal(page.position, "20");
    assert.equal(page.end, "t_older");
    assert.deepEqual(page.events.map((e) => [e.kind, e.live]), [
      ["message", false],
      ["message", false],
      ["reaction", false],
    ]);
    const req = server.requests.find((r) => r.path.endsWith("/messages"))!;
    assert.equal(req.path, "/_openmeet/client/v1/rooms/events/party/messages");
    assert.equal(req.query.get("limit"), "2");
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => events.length === 1, "the new message");
    await new Promise((r) => setTimeout(r, 50)); // nothing more comes
    assert.deepEqual(events.map((e) => e.position), [21]);
    assert.equal(streams()[0]!.headers["last-event-id"], "20");
  });

  test("members notices and frames without events", async (t) => {
    const { server } = await bridge(t, [
      (_req, res) => {
        sseHead(res);
        res.write(frame(undefined, "members", { room_id: "!r:localhost", portal, stream_pos: 9, count: 300 }));
        res.write(frame(undefined, "m.event", { error: "event could not be encoded" }));
        res.write("event: m.room.message\ndata: {not json\n\n");
      },
    ]);
    const { c } = chat(server.url);
    const notices: unknown[] = [];
    const errors: unknown[] = [];
    c.on("members", (m) => notices.push(m));
    c.on("error", (e) => errors.push(e));
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => errors.length === 2, "two errors");
    assert.deepEqual(notices, [{ roomId: "!r:localhost", portal, position: 9, count: 300 }]);
  });

  test("EventSource transport: a new ticket for every connection, the position in the URL", async (t) => {
    let tickets = 0;
    const { server, streams } = await bridge(
      t,
      [
        (_req, res) => {
          sseHead(res);
          res.end(message(30, "first"));
        },
        (_req, res) => {
          sseHead(res);
          res.write(message(31, "second"));
        },
      ],
      (req, res) => {
        if (req.path !== "/_openmeet/client/v1/events/ticket") return false;
        assert.equal(req.method, "POST");
        assert.equal(req.headers.authorization, "Bearer jwt");
        json(res, 200, { ticket: `ticket-${++tickets}`, expires_in_ms: 30000 });
        return true;
      },
    );
    const { c, events } = chat(server.url, { stream: { transport: "eventsource", EventSource: FetchEventSource } });
    c.connect();
    t.after(() => c.disconnect());
    await waitFor(() => events.length === 2, "both messages");
    assert.deepEqual(events.map((e) => e.position), [30, 31]);
    assert.deepEqual(
      streams().map((r) => [r.query.get("ticket"), r.query.get("last_event_id"), r.headers.authorization]),
      [
        ["ticket-1", null, undefined],
        ["ticket-2", "30", undefined],
      ],
    );
  });
});

/**
 * Node 20 has no EventSource; this stand-in behaves like the browser's for
 * what the client uses (open, named events with lastEventId, error on end),
 * over a real connection.
 */
class FetchEventSource implements EventSourceLike {
  onopen: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  private listeners = new Map<string, ((ev: { data: string; lastEventId: string }) => void)[]>();
  private abort = new AbortController();

  constructor(url: string) {
    void this.run(url);
  }

  addEventListener(type: string, listener: (ev: { data: string; lastEventId: string }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.abort.abort();
  }

  private async run(url: string) {
    try {
      const resp = await fetch(url, { signal: this.abort.signal });
      if (resp.status !== 200 || !resp.body) throw new Error(`status ${resp.status}`);
      this.onopen?.({});
      const parser = new SSEParser({
        onFrame: (f) => {
          for (const l of this.listeners.get(f.event) ?? []) l({ data: f.data, lastEventId: f.lastEventId });
        },
      });
      const decoder = new TextDecoder();
      const reader = resp.body.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) parser.feed(decoder.decode(r.value, { stream: true }));
      throw new Error("stream ended");
    } catch {
      if (!this.abort.signal.aborted) this.onerror?.({});
    }
  }
}
