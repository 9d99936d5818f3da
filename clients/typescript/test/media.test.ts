import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChatClient } from "../src/chat.js";
import { BridgeError } from "../src/errors.js";
import { toChatEvent } from "../src/events.js";
import { json, serve } from "./helpers.js";

describe("media", () => {
  test("upload sends the file as it is, with its type, name and a txn id", async (t) => {
    const server = await serve((req, res) => {
      if (req.query.get("filename") === "huge.bin") {
        json(res, 413, { errcode: "M_TOO_LARGE", error: "The file is larger than the limit" });
        return;
      }
      json(res, 200, { txn_id: req.path.split("/").pop(), state: "sent", event_id: "$e", content_uri: "mxc://hs/abc", url: "/_openmeet/client/v1/media/download/hs/abc?sig=x" });
    });
    t.after(() => server.close());
    const client = new ChatClient({ baseUrl: server.url, token: () => "jwt" });
    const file = new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], { type: "image/png" });
    const resp = await client.upload({ kind: "event", slug: "meetup" }, file, { filename: "cat.png", txnId: "t1" });
    assert.equal(resp.content_uri, "mxc://hs/abc");
    const req = server.requests[0]!;
    assert.equal(req.method, "PUT");
    assert.equal(req.path, "/_openmeet/client/v1/rooms/events/meetup/upload/t1");
    assert.equal(req.query.get("filename"), "cat.png");
    assert.equal(req.headers["content-type"], "image/png");
    assert.equal(req.headers["content-length"], "4");
    assert.equal(req.headers.authorization, "Bearer jwt");
    await assert.rejects(client.upload({ kind: "event", slug: "meetup" }, new Blob(["x"]), { filename: "huge.bin" }), (err: unknown) => {
      assert.ok(err instanceof BridgeError);
      assert.equal(err.status, 413);
      assert.equal(err.errcode, "M_TOO_LARGE");
      return true;
    });
    assert.equal(server.requests[1]!.headers["content-type"], "application/octet-stream");
  });

  test("events carry the payload's media URLs", () => {
    const ev = toChatEvent(
      {
        room_id: "!r",
        event: { type: "m.room.message", event_id: "$e", content: { msgtype: "m.image", body: "cat.png", url: "mxc://hs/abc" } } as unknown as Record<string, never>,
        media: { url: "/u", thumbnail_url: "/t" },
      },
      true,
    );
    assert.equal(ev.kind, "message");
    assert.deepEqual(ev.media, { url: "/u", thumbnail_url: "/t" });
  });
});
