// Both clients against a running bridge and Synapse. Skipped unless
// BRIDGE_URL (the bridge's base URL), PROVISIONING_SECRET and JWT (an
// OpenMeet JWT the bridge accepts) are set; `npm run test:integration`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChatClient } from "../src/chat.js";
import { BridgeError, ErrCode } from "../src/errors.js";
import type { ChatEvent } from "../src/events.js";
import { ProvisioningClient } from "../src/provisioning.js";

const env = { BRIDGE_URL: process.env.BRIDGE_URL, PROVISIONING_SECRET: process.env.PROVISIONING_SECRET, JWT: process.env.JWT };
const missing = Object.entries(env)
  .filter(([, v]) => !v)
  .map(([k]) => k);
const skip = missing.length > 0 ? `set ${missing.join(", ")} to run against a bridge` : false;

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("against the bridge", () => {
  test("provision a portal, chat in it, and get typed errors", { skip }, async (t) => {
    const baseUrl = env.BRIDGE_URL!;
    const prov = new ProvisioningClient({ baseUrl, secret: env.PROVISIONING_SECRET! });
    const chat = new ChatClient({ baseUrl, token: () => env.JWT! });
    t.after(() => chat.disconnect());

    const me = await chat.whoami();
    await prov.putUser(me.tenant, me.slug, { displayname: me.displayname || me.slug });
    const slug = `ts-client-${Date.now().toString(36)}`;
    const room = { kind: "event", slug };
    await prov.putPortal(me.tenant, "event", slug, { name: "TypeScript client test", ensure_room: true });
    const member = await prov.putMember(me.tenant, "event", slug, me.slug, "host");
    if (member.pending) {
      await until("the membership", async () => ((await prov.getMember(me.tenant, "event", slug, me.slug)).membership === "join" ? true : undefined));
    }
    await until("the room in /rooms", async () => ((await chat.rooms()).some((r) => r.slug === slug) ? true : undefined));

    const events: ChatEvent[] = [];
    chat.on("event", (e) => events.push(e));
    const opened = new Promise<void>((resolve) => chat.on("status", (s) => s.state === "open" && resolve()));
    chat.connect();
    await opened;
    // The stream's first frame carries its position: a cut from now on
    // resumes from there.
    await until("the stream's first position", () => chat.position);

    const detail = await chat.room(room);
    assert.equal(detail.slug, slug);
    assert.equal(detail.power_level, 100); // host
    assert.ok(detail.power_level >= detail.redact_level);

    const sent = await chat.send(room, "hello from the TypeScript client");
    const accepted = await sent.accepted;
    assert.ok(accepted.state === "sent" || accepted.state === "pending");
    const echo = await until("the message on the stream", () => events.find((e) => e.kind === "message" && e.txnId === sent.txnId));
    assert.equal(echo.sender?.user_id, me.user_id);
    assert.equal(echo.portal?.slug, slug);

    // Retrying the same txn id is idempotent.
    await (await chat.send(room, "hello from the TypeScript client", { txnId: sent.txnId })).accepted;
    const page = await chat.history(room, { limit: 20 });
    assert.equal(page.events.filter((e) => e.kind === "message" && e.eventId === echo.eventId).length, 1);
    // The page says which stream position it is consistent with; the echo
    // came before it.
    assert.ok(page.position !== undefined && Number(page.position) >= echo.position!);

    // Reacting twice: accepted both times, one reaction.
    const r1 = await (await chat.react(room, echo.eventId!, "👍")).accepted;
    const r2 = await (await chat.react(room, echo.eventId!, "👍")).accepted;
    assert.ok(r1.state === "sent" || r1.state === "pending");
    // The bridge answers a duplicate 409 M_DUPLICATE_ANNOTATION, which counts
    // as accepted; only while the first is still on its way can the second
    // be pending too.
    assert.ok(r2.duplicate === true || r1.state === "pending", JSON.stringify(r2));

    // A file: uploaded, then on the stream with a URL that loads it
    // without a token; a type the bridge refuses is a typed error.
    const cfg = await chat.mediaConfig();
    assert.ok(cfg.max_upload_bytes > 0 && cfg.allowed_types.includes("text/plain"));
    const text = "notes from the TypeScript client\n";
    const up = await chat.upload(room, new Blob([text], { type: "text/plain" }), { filename: "notes.txt" });
    assert.ok(up.state === "sent" || up.state === "pending");
    assert.ok(up.content_uri.startsWith("mxc://"));
    const fileEvent = await until("the file on the stream", () => events.find((e) => e.kind === "message" && e.txnId === up.txn_id));
    assert.equal(fileEvent.kind === "message" && fileEvent.msgtype, "m.file");
    const loaded = await fetch(new URL(fileEvent.media!.url!, baseUrl));
    assert.equal(loaded.status, 200);
    assert.equal(await loaded.text(), text);
    assert.equal(loaded.headers.get("x-content-type-options"), "nosniff");
    await assert.rejects(
      chat.upload(room, new Blob(["<svg xmlns='http://www.w3.org/2000/svg'/>"], { type: "image/svg+xml" })),
      (err: unknown) => err instanceof BridgeError && err.status === 415 && err.errcode === "NET.OPENMEET.TYPE_NOT_ALLOWED",
    );

    await assert.rejects(
      prov.getPortal(me.tenant, "event", `${slug}-never-made`),
      (err: unknown) => err instanceof BridgeError && err.status === 404 && err.errcode === ErrCode.NotFound,
    );
    await prov.closePortal(me.tenant, "event", slug);
  });
});
