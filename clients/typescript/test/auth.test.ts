import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChatClient } from "../src/chat.js";
import { BridgeError } from "../src/errors.js";
import { json, serve } from "./helpers.js";

/** A bridge that accepts only the bearer token "fresh". */
async function bridge() {
  return serve((req, res) => {
    if (req.headers.authorization !== "Bearer fresh") {
      json(res, 401, { errcode: "M_UNKNOWN_TOKEN", error: "Invalid token" });
      return;
    }
    json(res, 200, { user_id: "@openmeet_t_ada:localhost", tenant: "t", slug: "ada", displayname: "Ada" });
  });
}

describe("token provider", () => {
  test("a 401 asks for a fresh token once and retries with it", async (t) => {
    const server = await bridge();
    t.after(() => server.close());
    const calls: boolean[] = [];
    const client = new ChatClient({
      baseUrl: server.url,
      token: ({ refresh }) => {
        calls.push(refresh);
        return refresh ? "fresh" : "stale";
      },
    });
    const me = await client.whoami();
    assert.equal(me.slug, "ada");
    assert.deepEqual(calls, [false, true]);
    assert.deepEqual(
      server.requests.map((r) => r.headers.authorization),
      ["Bearer stale", "Bearer fresh"],
    );
    // The fresh token is kept: no more provider calls.
    await client.rooms().catch(() => {});
    assert.deepEqual(calls, [false, true]);
  });

  test("a second 401 is thrown, not retried again", async (t) => {
    const server = await bridge();
    t.after(() => server.close());
    let calls = 0;
    const client = new ChatClient({
      baseUrl: server.url,
      token: () => {
        calls++;
        return "never-valid";
      },
    });
    await assert.rejects(client.whoami(), (err: unknown) => {
      assert.ok(err instanceof BridgeError);
      assert.equal(err.status, 401);
      assert.equal(err.errcode, "M_UNKNOWN_TOKEN");
      return true;
    });
    assert.equal(calls, 2);
    assert.equal(server.requests.length, 2);
  });

  test("concurrent 401s share one refresh", async (t) => {
    const server = await bridge();
    t.after(() => server.close());
    const calls: boolean[] = [];
    const client = new ChatClient({
      baseUrl: server.url,
      token: async ({ refresh }) => {
        calls.push(refresh);
        await new Promise((r) => setTimeout(r, 20));
        return refresh ? "fresh" : "stale";
      },
    });
    await Promise.all([client.rooms(), client.ticket(), client.typing({ kind: "event", slug: "x" }, true)].map((p) => p.catch(() => {})));
    assert.deepEqual(calls, [false, true]);
  });

  test("a provider that fails is asked again next time", async (t) => {
    const server = await bridge();
    t.after(() => server.close());
    let n = 0;
    const client = new ChatClient({
      baseUrl: server.url,
      token: () => {
        if (n++ === 0) throw new Error("not signed in yet");
        return "fresh";
      },
    });
    await assert.rejects(client.whoami(), /not signed in yet/);
    assert.equal((await client.whoami()).slug, "ada");
  });
});
