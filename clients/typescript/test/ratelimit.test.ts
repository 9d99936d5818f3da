import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChatClient } from "../src/chat.js";
import { BridgeError } from "../src/errors.js";
import { json, serve } from "./helpers.js";

const room = { kind: "event", slug: "meetup" } as const;
const limited = (ms: number) => ({ errcode: "M_LIMIT_EXCEEDED", error: "Too many requests from this user", retry_after_ms: ms });

describe("429 M_LIMIT_EXCEEDED from the bridge's per-user limits", () => {
  test("a direct call is tried again after retry_after_ms, not before", async (t) => {
    const times: number[] = [];
    const server = await serve((_req, res) => {
      times.push(Date.now());
      if (times.length <= 2) json(res, 429, limited(200), { "Retry-After": "1" });
      else json(res, 200, {});
    });
    t.after(() => server.close());
    const client = new ChatClient({ baseUrl: server.url, token: () => "jwt" });
    await client.typing(room, true);
    assert.equal(times.length, 3);
    // retry_after_ms (200) is the more precise hint and wins over Retry-After (1 s).
    assert.ok(times[1]! - times[0]! >= 200, `retried after ${times[1]! - times[0]!} ms`);
    assert.ok(times[2]! - times[1]! >= 200, `retried after ${times[2]! - times[1]!} ms`);
    assert.ok(server.requests.every((r) => r.path === "/_openmeet/client/v1/rooms/events/meetup/typing"));
  });

  test("an upload is sent again whole after the wait", async (t) => {
    const server = await serve((req, res) => {
      if (server.requests.length === 1) json(res, 429, limited(50));
      else json(res, 200, { txn_id: req.path.split("/").pop(), state: "sent", event_id: "$e", content_uri: "mxc://hs/a", url: "/u" });
    });
    t.after(() => server.close());
    const client = new ChatClient({ baseUrl: server.url, token: () => "jwt" });
    const resp = await client.upload(room, new Blob(["abcd"], { type: "text/plain" }), { txnId: "up-1" });
    assert.equal(resp.event_id, "$e");
    assert.equal(server.requests.length, 2);
    assert.deepEqual(server.requests.map((r) => r.body), ["abcd", "abcd"]);
  });

  test("retries are bounded; then the 429 is thrown with its hint", async (t) => {
    const server = await serve((_req, res) => json(res, 429, limited(20)));
    t.after(() => server.close());
    const client = new ChatClient({ baseUrl: server.url, token: () => "jwt", rateLimitRetry: { retries: 2 } });
    await assert.rejects(client.markRead(room, "$e"), (err: unknown) => {
      assert.ok(err instanceof BridgeError);
      assert.equal(err.status, 429);
      assert.equal(err.errcode, "M_LIMIT_EXCEEDED");
      assert.equal(err.retryAfterMs, 20);
      return true;
    });
    assert.equal(server.requests.length, 3);
  });

  test("a wait longer than maxWaitMs is not waited for", async (t) => {
    const server = await serve((_req, res) => json(res, 429, limited(10_000), { "Retry-After": "10" }));
    t.after(() => server.close());
    const client = new ChatClient({ baseUrl: server.url, token: () => "jwt", rateLimitRetry: { maxWaitMs: 1000 } });
    await assert.rejects(client.ticket(), (err: unknown) => err instanceof BridgeError && err.retryAfterMs === 10_000);
    assert.equal(server.requests.length, 1);
  });

  test("other refusals are not retried", async (t) => {
    const server = await serve((_req, res) => json(res, 503, { errcode: "M_LIMIT_EXCEEDED", error: "bridge-wide", retry_after_ms: 10 }));
    t.after(() => server.close());
    const client = new ChatClient({ baseUrl: server.url, token: () => "jwt" });
    await assert.rejects(client.typing(room, false), (err: unknown) => err instanceof BridgeError && err.status === 503);
    assert.equal(server.requests.length, 1);
  });
});
