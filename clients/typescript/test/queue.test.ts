import "fake-indexeddb/auto";
import assert from "node:assert/strict";
import type http from "node:http";
import { describe, test } from "node:test";
import { ChatClient } from "../src/chat.js";
import { ErrCode, SendFailedError, isBridgeError } from "../src/errors.js";
import type { QueueStorage, QueueUpdate } from "../src/queue.js";
import { IndexedDBQueueStorage } from "../src/storage/indexeddb.js";
import { MemoryQueueStorage } from "../src/storage/memory.js";
import { json, serve, waitFor, type Recorded } from "./helpers.js";

const sendPath = /^\/_openmeet\/client\/v1\/rooms\/(events|groups)\/([^/]+)\/(send|edit|react|redact)\/([^/]+)$/;

type Plan = (req: Recorded, attempt: number) => { status: number; body?: unknown; headers?: Record<string, string> } | "drop" | undefined;

/**
 * A bridge's send endpoints: idempotent on the txn id (a txn id seen before
 * is answered as the first time and stored once), in arrival order. plan
 * may answer otherwise, or drop the connection, per request.
 */
async function fakeBridge(t: { after(fn: () => unknown): void }, plan: Plan = () => undefined) {
  const stored: { room: string; action: string; txnId: string; body: Record<string, unknown> }[] = [];
  const attempts = new Map<string, number>();
  let inFlight = 0;
  let maxInFlightPerRoom = 0;
  const perRoom = new Map<string, number>();
  const server = await serve(async (req, res: http.ServerResponse) => {
    const m = sendPath.exec(req.path);
    if (!m) {
      json(res, 404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
      return;
    }
    const [, kind, slug, action, txn] = m;
    const room = `${kind}/${decodeURIComponent(slug!)}`;
    const txnId = decodeURIComponent(txn!);
    const n = (attempts.get(txnId) ?? 0) + 1;
    attempts.set(txnId, n);
    perRoom.set(room, (perRoom.get(room) ?? 0) + 1);
    maxInFlightPerRoom = Math.max(maxInFlightPerRoom, perRoom.get(room)!);
    inFlight++;
    try {
      // Answer slowly and in a random order, so that a queue sending a room's
      // items in parallel would show it.
      await new Promise((r) => setTimeout(r, Math.random() * 15));
      const answer = plan(req, n);
      if (answer === "drop") {
        // The bridge got it but the answer is lost: the retry must not duplicate it.
        if (!stored.some((s) => s.txnId === txnId)) stored.push({ room, action: action!, txnId, body: JSON.parse(req.body) });
        res.socket?.destroy();
        return;
      }
      if (answer) {
        json(res, answer.status, answer.body ?? {}, answer.headers);
        return;
      }
      if (!stored.some((s) => s.txnId === txnId)) stored.push({ room, action: action!, txnId, body: JSON.parse(req.body) });
      json(res, 200, { txn_id: txnId, state: "sent", event_id: `$ev-${txnId}` });
    } finally {
      inFlight--;
      perRoom.set(room, perRoom.get(room)! - 1);
    }
  });
  t.after(() => server.close());
  return {
    server,
    stored,
    attempts,
    get maxInFlightPerRoom() {
      return maxInFlightPerRoom;
    },
  };
}

function client(url: string, storage: QueueStorage = new MemoryQueueStorage()) {
  const updates: QueueUpdate[] = [];
  const c = new ChatClient({
    baseUrl: url,
    token: () => "jwt",
    queue: { storage, backoff: { initialMs: 10, maxMs: 40 } },
    watchOnline: false,
  });
  c.on("queue", (u) => updates.push(u));
  return { c, updates, storage };
}

const room = { kind: "event", slug: "summer-party" };

describe("send queue", () => {
  test("one room's items reach the bridge in order, one at a time", async (t) => {
    const bridge = await fakeBridge(t);
    const { c } = client(bridge.server.url);
    const sends = [];
    for (let i = 0; i < 8; i++) sends.push(await c.send(room, `message ${i}`));
    const results = await Promise.all(sends.map((s) => s.accepted));
    assert.deepEqual(
      bridge.stored.map((s) => s.body.body),
      Array.from({ length: 8 }, (_, i) => `message ${i}`),
    );
    assert.equal(bridge.maxInFlightPerRoom, 1);
    assert.ok(results.every((r) => r.state === "sent" && r.status === 200 && r.eventId === `$ev-${r.txnId}`));
    assert.deepEqual(c.pending(), []);
  });

  test("a failure is retried with the same txn id and stored once", async (t) => {
    const bridge = await fakeBridge(t, (_req, n) => {
      if (n === 1) return "drop";
      if (n === 2) return { status: 503, body: { errcode: "M_UNKNOWN", error: "busy" }, headers: { "Retry-After": "0" } };
      return undefined;
    });
    const { c, updates } = client(bridge.server.url);
    const first = await c.send(room, "hello", { txnId: "txn-1" });
    const second = await c.send(room, { body: "world", reply_to: "$x" });
    const r1 = await first.accepted;
    await second.accepted;
    assert.equal(r1.txnId, "txn-1");
    assert.equal(bridge.attempts.get("txn-1"), 3);
    const txns = bridge.server.requests.map((r) => r.path.split("/").pop());
    assert.deepEqual(txns.slice(0, 3), ["txn-1", "txn-1", "txn-1"]);
    assert.deepEqual(
      bridge.stored.map((s) => s.body),
      [{ body: "hello" }, { body: "world", reply_to: "$x" }],
    );
    assert.deepEqual(
      updates.filter((u) => u.item.txnId === "txn-1").map((u) => u.state),
      ["queued", "retrying", "retrying", "accepted"],
    );
  });

  test("Retry-After and retry_after_ms are honoured", async (t) => {
    const times: number[] = [];
    const bridge = await fakeBridge(t, (_req, n) => {
      times.push(Date.now());
      if (n === 1) return { status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 300 } };
      if (n === 2) return { status: 503, body: { errcode: "M_UNKNOWN", error: "busy" }, headers: { "Retry-After": "1" } };
      return undefined;
    });
    const { c } = client(bridge.server.url);
    await (await c.send(room, "patience")).accepted;
    assert.equal(times.length, 3);
    assert.ok(times[1]! - times[0]! >= 300, `retried after ${times[1]! - times[0]!} ms`);
    assert.ok(times[2]! - times[1]! >= 1000, `retried after ${times[2]! - times[1]!} ms`);
  });

  test("202 (in the bridge's outbox) counts as accepted", async (t) => {
    const bridge = await fakeBridge(t, (req) => ({ status: 202, body: { txn_id: req.path.split("/").pop(), state: "pending" } }));
    const { c, storage } = client(bridge.server.url);
    const r = await (await c.send(room, "later")).accepted;
    assert.equal(r.state, "pending");
    assert.equal(r.status, 202);
    assert.equal(bridge.server.requests.length, 1);
    assert.deepEqual(await storage.load(), []);
  });

  test("a refusal for good fails that item and the room goes on", async (t) => {
    const bridge = await fakeBridge(t, (req) => {
      const body = JSON.parse(req.body) as { body?: string; key?: string };
      if (body.body === "forbidden") return { status: 403, body: { errcode: "M_FORBIDDEN", error: "not joined" } };
      if (body.body === "refused") return { status: 502, body: { txn_id: "x", state: "failed", error: "M_TOO_LARGE (HTTP 413): event too large" } };
      if (body.key === "👍") return { status: 502, body: { txn_id: "x", state: "failed", error: "M_DUPLICATE_ANNOTATION (HTTP 400): Can't send same reaction twice" } };
      if (body.key === "🎉") return { status: 409, body: { errcode: "M_DUPLICATE_ANNOTATION", error: "already reacted" } };
      return undefined;
    });
    const { c, updates } = client(bridge.server.url);
    const forbidden = await c.send(room, "forbidden");
    const refused = await c.send(room, "refused");
    const thumbs = await c.react(room, "$ev", "👍");
    const party = await c.react(room, "$ev", "🎉");
    const fine = await c.send(room, "fine");
    await assert.rejects(forbidden.accepted, (err: unknown) => err instanceof SendFailedError && err.txnId === forbidden.txnId && /not joined/.test(err.message));
    await assert.rejects(refused.accepted, (err: unknown) => err instanceof SendFailedError && /M_TOO_LARGE/.test(err.message));
    assert.equal((await thumbs.accepted).duplicate, true);
    assert.equal((await party.accepted).duplicate, true);
    assert.equal((await fine.accepted).state, "sent");
    assert.equal(bridge.attempts.get(forbidden.txnId), 1);
    assert.equal(bridge.attempts.get(refused.txnId), 1);
    assert.deepEqual(
      updates.filter((u) => u.state !== "queued").map((u) => u.state),
      ["failed", "failed", "accepted", "accepted", "accepted"],
    );
  });

  test("a txn id used for another request (409 TXN_CONFLICT) fails the item, a reaction too, and is not retried", async (t) => {
    const conflict = { status: 409, body: { errcode: "NET.OPENMEET.TXN_CONFLICT", error: "This txnId was already used for another request" } };
    const bridge = await fakeBridge(t, () => conflict);
    const { c } = client(bridge.server.url);
    const msg = await c.send(room, "hello", { txnId: "used" });
    const reaction = await c.react(room, "$ev", "👍", { txnId: "used-too" });
    const isConflict = (err: unknown) =>
      err instanceof SendFailedError && isBridgeError(err.cause, ErrCode.TxnConflict) && err.cause.status === 409;
    await assert.rejects(msg.accepted, isConflict);
    await assert.rejects(reaction.accepted, isConflict);
    assert.equal(bridge.attempts.get("used"), 1);
    assert.equal(bridge.attempts.get("used-too"), 1);
  });

  test("a 502 without an outbox state (homeserver unreachable) is retried", async (t) => {
    const bridge = await fakeBridge(t, (_req, n) => (n < 3 ? { status: 502, body: { errcode: "M_UNKNOWN", error: "The homeserver did not answer" } } : undefined));
    const { c } = client(bridge.server.url);
    const s = await c.redact(room, "$ev", { reason: "oops" });
    await s.accepted;
    assert.equal(bridge.attempts.get(s.txnId), 3);
    assert.deepEqual(bridge.stored[0]!.body, { event_id: "$ev", reason: "oops" });
    assert.equal(bridge.stored[0]!.action, "redact");
  });

  test("a blocked room does not hold up another", async (t) => {
    const bridge = await fakeBridge(t, (req) => (req.path.includes("/stuck/") ? { status: 503, body: { errcode: "M_UNKNOWN", error: "down" } } : undefined));
    const { c } = client(bridge.server.url);
    await c.send({ kind: "group", slug: "stuck" }, "waits");
    const other = await c.send(room, "goes");
    await other.accepted;
    assert.deepEqual(bridge.stored.map((s) => s.body.body), ["goes"]);
    assert.equal(c.pending().length, 1);
    assert.equal(c.pending({ kind: "groups", slug: "stuck" })[0]!.body.body, "waits");
    c.disconnect();
  });

  for (const [name, makeStorage] of [
    ["in memory", () => new MemoryQueueStorage()],
    ["in IndexedDB", () => new IndexedDBQueueStorage({ namespace: "t/ada", database: `restart-${Math.random()}` })],
  ] as const) {
    test(`survives a restart (${name}): a new client on the same storage sends what the old one could not, in order, with the same txn ids`, async (t) => {
      let up = false;
      const bridge = await fakeBridge(t, () => (up ? undefined : { status: 503, body: { errcode: "M_UNKNOWN", error: "down" } }));
      const storage = makeStorage();
      const before = client(bridge.server.url, storage);
      const txns: string[] = [];
      for (const body of ["one", "two", "three"]) txns.push((await before.c.send(room, body)).txnId);
      await before.c.react(room, "$ev", "👍");
      await waitFor(() => bridge.server.requests.length >= 2, "the first tries");
      before.c.disconnect(); // the page is closed
      assert.equal((await storage.load()).length, 4);

      up = true;
      const after = client(bridge.server.url, storage);
      await after.c.startQueue();
      await waitFor(() => after.c.pending().length === 0 && bridge.stored.length === 4, "the queue to drain");
      assert.deepEqual(await storage.load(), []);
      assert.deepEqual(
        bridge.stored.map((s) => [s.action, s.txnId, s.body.body ?? s.body.key]),
        [
          ["send", txns[0], "one"],
          ["send", txns[1], "two"],
          ["send", txns[2], "three"],
          ["react", bridge.stored[3]!.txnId, "👍"],
        ],
      );
      assert.deepEqual(
        after.updates.filter((u) => u.state === "accepted").map((u) => u.item.txnId),
        bridge.stored.map((s) => s.txnId),
      );
      // Queued after the restart: numbered after what was restored.
      await (await after.c.send(room, "four")).accepted;
      assert.equal(bridge.stored.at(-1)!.body.body, "four");
    });
  }

  test("enqueueing a txn id already queued does not queue it twice", async (t) => {
    let up = false;
    const bridge = await fakeBridge(t, () => (up ? undefined : { status: 503, body: { errcode: "M_UNKNOWN", error: "down" } }));
    const { c } = client(bridge.server.url);
    const a = await c.send(room, "once", { txnId: "same" });
    const b = await c.send(room, "once", { txnId: "same" });
    assert.equal(c.pending().length, 1);
    up = true;
    await Promise.all([a.accepted, b.accepted]);
    assert.equal(bridge.stored.length, 1);
  });

  test("disconnect and connect at once: the queue goes on", async (t) => {
    let up = false;
    const bridge = await fakeBridge(t, () => (up ? undefined : { status: 503, body: { errcode: "M_UNKNOWN", error: "down" } }));
    const { c } = client(bridge.server.url);
    const s = await c.send(room, "still sent");
    await waitFor(() => bridge.server.requests.length >= 1, "a first try");
    c.disconnect();
    up = true;
    await c.startQueue();
    await s.accepted;
    assert.equal(bridge.stored.length, 1);
  });
});
