// Two OpenMeet users chat through the demo page in headless Chromium, with
// the real bridge and Synapse behind it, and an ordinary Matrix user
// (Alice) in the same room. The Go test in web/ starts those and passes
// their addresses and tokens in the environment. Bob's traffic goes through
// a proxy that can cut every open connection (CUT_URL).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import zlib from "node:zlib";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run this through go test ./web/`);
  return value;
};
const pageURL = (base, token) => `${base}/_openmeet/web/#token=${encodeURIComponent(token)}`;
const ROOM = "Launch party";
const ROOM2 = "After party";

// Every dialog (alert, confirm, prompt) a page opens, and every uncaught
// error: the page must have none.
const dialogs = [];
const pageErrors = [];

async function signedIn(browser, base, token) {
  const context = await browser.newContext();
  const p = await context.newPage();
  // What the page logs goes into the test output, to explain a failure.
  p.on("console", (m) => {
    if ((m.type() === "error" || m.type() === "warning") && !m.text().includes("ERR_INTERNET_DISCONNECTED")) console.log(`page (${base}): ${m.text()}`);
  });
  p.on("pageerror", (err) => pageErrors.push(`${base}: ${err.message}`));
  p.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  await p.goto(pageURL(base, token));
  await p.locator("#connection", { hasText: "live" }).waitFor();
  await p.locator("#rooms li").first().waitFor();
  return { context, page: p };
}

async function open(p, name) {
  await p.locator("#rooms li", { hasText: name }).click();
  await p.locator("#room-name", { hasText: name }).waitFor();
}

const item = (p, text) => p.locator("#messages li", { has: p.locator(".body", { hasText: text }) });
const bodies = (p, text) => p.locator("#messages li .body", { hasText: text });
const badge = (p, name) => p.locator("#rooms li", { hasText: name }).locator(".badge");

async function send(p, text) {
  await p.fill("#text", text);
  await p.press("#text", "Enter");
}

async function cut(who) {
  await who.context.setOffline(true);
  assert.equal((await fetch(env("CUT_URL"))).status, 204);
  await who.page.locator("#connection", { hasText: "reconnecting" }).waitFor();
}

async function backOnline(who) {
  await who.context.setOffline(false);
  await who.page.locator("#connection", { hasText: "live" }).waitFor({ timeout: 30000 });
}

// Alice, on Synapse directly.
async function asAlice(method, path, body) {
  const resp = await fetch(`${env("SYNAPSE_URL")}/_matrix/client/v3${path}`, {
    method,
    headers: { Authorization: `Bearer ${env("ALICE_TOKEN")}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  assert.equal(resp.status, 200, text);
  return JSON.parse(text);
}
const roomPath = () => `/rooms/${encodeURIComponent(env("ROOM_ID"))}`;
const txn = (what) => `e2e-${what}-${Date.now()}-${Math.random().toString(36).slice(2)}`;

// A PNG of w x h pixels with a pattern.
function png(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + 3 * w);
    for (let x = 0; x < w; x++) row.set([(x * 5) & 255, (y * 7) & 255, (x ^ y) & 255], 1 + 3 * x);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// An image shown in a page, once the browser has loaded it.
async function loadedImage(p, alt) {
  const img = p.locator(`#messages li[data-event-id] img[alt="${alt}"]`);
  await img.waitFor({ timeout: 30000 });
  await p.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle(), { timeout: 30000 });
  return img;
}

// The bytes a URL from a page loads, without any token.
async function bytesOf(href) {
  const resp = await fetch(new URL(href, env("BRIDGE_URL")));
  assert.equal(resp.status, 200);
  return Buffer.from(await resp.arrayBuffer());
}

// Which messages a page shows, in order.
const shown = (p) => p.locator("#messages li .body").allTextContents();

test("the demo page on the bridge client", { timeout: 300000 }, async (t) => {
  const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox"] });
  t.after(() => browser.close());
  const ada = await signedIn(browser, env("BRIDGE_URL"), env("TOKEN_ADA"));
  await open(ada.page, ROOM);
  let bob;

  await t.test("a cut right after the page opens loses nothing", async () => {
    // Bob's page has just opened: no live event has reached it yet.
    bob = await signedIn(browser, env("PROXY_URL"), env("TOKEN_BOB"));
    await open(bob.page, ROOM);
    await cut(bob);
    await send(ada.page, "while you were away 1");
    await send(ada.page, "while you were away 2");
    await item(ada.page, "while you were away 2").and(ada.page.locator("[data-event-id]")).waitFor();
    await backOnline(bob);
    await bodies(bob.page, "while you were away 1").waitFor({ timeout: 30000 });
    await bodies(bob.page, "while you were away 2").waitFor({ timeout: 30000 });
    assert.equal(await bodies(bob.page, "while you were away 1").count(), 1);
    assert.equal(await bodies(bob.page, "while you were away 2").count(), 1);
  });

  await t.test("chat, typing, own messages by name live and after a reload", async () => {
    await send(ada.page, "hello bob");
    await bodies(bob.page, "hello bob").waitFor();
    assert.equal(await item(bob.page, "hello bob").locator(".sender").textContent(), "Ada Lovelace");
    // Ada's pending copy is replaced by its echo, not doubled, and named
    // like after a reload.
    await ada.page.locator("#messages li.pending").waitFor({ state: "detached" });
    assert.equal(await bodies(ada.page, "hello bob").count(), 1);
    assert.equal(await item(ada.page, "hello bob").locator(".sender").textContent(), "Ada Lovelace");

    await ada.page.fill("#text", "are you there");
    await bob.page.locator("#typing", { hasText: "Ada Lovelace is typing" }).waitFor();
    await ada.page.press("#text", "Enter");
    await bodies(bob.page, "are you there").waitFor();
    await bob.page.waitForFunction(() => document.getElementById("typing").textContent === "");

    await ada.page.reload();
    await ada.page.locator("#connection", { hasText: "live" }).waitFor();
    await open(ada.page, ROOM);
    await bodies(ada.page, "hello bob").waitFor();
    assert.equal(await item(ada.page, "hello bob").locator(".sender").textContent(), "Ada Lovelace");
    assert.equal(await bodies(ada.page, "hello bob").count(), 1);
  });

  await t.test("sending while offline is delivered once back online, in order", async () => {
    await cut(bob);
    await send(bob.page, "sent offline 1");
    await send(bob.page, "sent offline 2");
    await send(bob.page, "sent offline 3");
    await item(bob.page, "sent offline 3").and(bob.page.locator(".pending")).waitFor();
    assert.equal(await bob.page.locator("#messages li.pending").count(), 3);
    await backOnline(bob);
    await bodies(ada.page, "sent offline 3").waitFor({ timeout: 30000 });
    await bob.page.locator("#messages li.pending").waitFor({ state: "detached", timeout: 30000 });
    for (const p of [ada.page, bob.page]) {
      const texts = (await shown(p)).filter((s) => s.startsWith("sent offline"));
      assert.deepEqual(texts, ["sent offline 1", "sent offline 2", "sent offline 3"]);
    }
    assert.equal(await item(ada.page, "sent offline 1").locator(".sender").textContent(), "Bob");
  });

  await t.test("reacting twice is a toggle", async () => {
    const onBob = item(bob.page, "hello bob");
    await onBob.hover();
    await onBob.locator(".actions button", { hasText: "👍" }).click();
    const chip = (p) => item(p, "hello bob").locator(".reactions button", { hasText: "👍 1" });
    await chip(ada.page).waitFor();
    await chip(bob.page).and(bob.page.locator(".mine")).waitFor();
    await chip(bob.page).click(); // take it back
    await chip(ada.page).waitFor({ state: "detached" });
    await chip(bob.page).waitFor({ state: "detached" });
    assert.equal(await item(ada.page, "hello bob").locator(".body").textContent(), "hello bob");
    // And again: a third click reacts anew.
    await onBob.hover();
    await onBob.locator(".actions button", { hasText: "👍" }).click();
    await chip(ada.page).waitFor();
  });

  await t.test("another Matrix user removing their reaction", async () => {
    const target = await item(ada.page, "are you there").getAttribute("data-event-id");
    const { event_id: reaction } = await asAlice("PUT", `${roomPath()}/send/m.reaction/${txn("react")}`, {
      "m.relates_to": { rel_type: "m.annotation", event_id: target, key: "🎉" },
    });
    const chip = item(ada.page, "are you there").locator(".reactions button", { hasText: "🎉 1" });
    await chip.waitFor();
    await asAlice("PUT", `${roomPath()}/redact/${encodeURIComponent(reaction)}/${txn("unreact")}`, {});
    await chip.waitFor({ state: "detached" });
    assert.equal(await item(ada.page, "are you there").locator(".body").textContent(), "are you there");
    assert.equal(await ada.page.locator("#messages li.redacted").count(), 0);
  });

  await t.test("edit and remove only where the user may, removing after a confirmation", async () => {
    await send(bob.page, "bob's own words");
    await item(bob.page, "bob's own words").and(bob.page.locator("[data-event-id]")).waitFor();
    await item(ada.page, "bob's own words").waitFor();
    // Bob, an attendee: nothing of that on Ada's message, both on his own.
    const adas = item(bob.page, "hello bob").locator(".actions");
    assert.equal(await adas.locator("button", { hasText: "edit" }).count(), 0);
    assert.equal(await adas.locator("button", { hasText: "remove" }).count(), 0);
    const own = item(bob.page, "bob's own words").locator(".actions");
    assert.equal(await own.locator("button", { hasText: "edit" }).count(), 1);
    assert.equal(await own.locator("button", { hasText: "remove" }).count(), 1);
    // Ada, the host: may remove Bob's message, not edit it.
    const onAda = item(ada.page, "bob's own words");
    await onAda.locator(".actions button", { hasText: "remove" }).waitFor({ state: "attached" });
    assert.equal(await onAda.locator(".actions button", { hasText: "edit" }).count(), 0);
    await onAda.hover();
    await onAda.locator(".actions button", { hasText: "remove" }).click();
    await onAda.locator(".confirm button", { hasText: "Cancel" }).click();
    assert.equal(await onAda.locator(".body").textContent(), "bob's own words");
    await onAda.hover();
    await onAda.locator(".actions button", { hasText: "remove" }).click();
    await onAda.locator(".confirm button", { hasText: "Remove" }).click();
    await item(bob.page, "(message removed)").waitFor();
    // Bob edits his other message.
    const mine = item(bob.page, "sent offline 1");
    await mine.hover();
    await mine.locator(".actions button", { hasText: "edit" }).click();
    await mine.locator(".edit-box").fill("sent offline 1, edited");
    await mine.locator(".edit-box").press("Enter");
    await item(ada.page, "sent offline 1, edited").locator(".edited", { hasText: "(edited)" }).waitFor();
  });

  await t.test("images and files both ways: shown inline, attached by button and by paste", async () => {
    // Alice sends an image from her Matrix client.
    const photo = png(120, 90);
    const up = await fetch(`${env("SYNAPSE_URL")}/_matrix/media/v3/upload?filename=alice-photo.png`, {
      method: "POST",
      headers: { Authorization: `Bearer ${env("ALICE_TOKEN")}`, "Content-Type": "image/png" },
      body: photo,
    });
    assert.equal(up.status, 200);
    const { content_uri: mxc } = await up.json();
    await asAlice("PUT", `${roomPath()}/send/m.room.message/${txn("photo")}`, {
      msgtype: "m.image", body: "alice-photo.png", url: mxc, info: { mimetype: "image/png", size: photo.length, w: 120, h: 90 },
    });
    for (const p of [ada.page, bob.page]) {
      const img = await loadedImage(p, "alice-photo.png");
      // The link opens the file itself: the same bytes.
      const href = await img.locator("xpath=..").getAttribute("href");
      assert.deepEqual(await bytesOf(href), photo);
    }

    // Ada attaches one with the button.
    const mine = png(1000, 700);
    const chooser = ada.page.waitForEvent("filechooser");
    await ada.page.click("#attach");
    await (await chooser).setFiles({ name: "ada-upload.png", mimeType: "image/png", buffer: mine });
    const shownToAda = await loadedImage(ada.page, "ada-upload.png");
    await loadedImage(bob.page, "ada-upload.png");
    assert.equal(await ada.page.locator("#messages li.pending").count(), 0);
    // The page shows the thumbnail, and links to the file.
    assert.ok((await shownToAda.evaluate((el) => el.naturalWidth)) < 1000);
    assert.deepEqual(await bytesOf(await shownToAda.locator("xpath=..").getAttribute("href")), mine);
    // Alice gets an m.image with its size and can download it.
    const page = await asAlice("GET", `${roomPath()}/messages?dir=b&limit=20`);
    const got = page.chunk.find((e) => e.content?.body === "ada-upload.png");
    assert.ok(got, "alice has ada's image");
    assert.equal(got.content.msgtype, "m.image");
    assert.equal(got.content.info.w, 1000);
    assert.equal(got.content.info.h, 700);
    assert.equal(got.content.info.mimetype, "image/png");
    assert.ok(got.content.info.thumbnail_url);
    const dl = await fetch(`${env("SYNAPSE_URL")}/_matrix/client/v1/media/download/${got.content.url.slice("mxc://".length)}`, {
      headers: { Authorization: `Bearer ${env("ALICE_TOKEN")}` },
    });
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), mine);

    // Bob pastes a text file into the message box: it is sent as a file
    // and shown as a link.
    await bob.page.locator("#text").focus();
    await bob.page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["meeting notes\n"], "notes.txt", { type: "text/plain" }));
      document.getElementById("text").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    });
    const link = ada.page.locator("#messages li[data-event-id] a.file", { hasText: "notes.txt" });
    await link.waitFor({ timeout: 30000 });
    assert.equal((await bytesOf(await link.getAttribute("href"))).toString(), "meeting notes\n");
    await bob.page.locator("#messages li a.file", { hasText: "notes.txt" }).and(bob.page.locator("li[data-event-id] a")).waitFor();

    // A file the bridge does not take: the page says so, nothing is sent.
    await bob.page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["<svg xmlns='http://www.w3.org/2000/svg'/>"], "evil.svg", { type: "image/svg+xml" }));
      document.getElementById("text").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    });
    await bob.page.locator("#notice", { hasText: "File not sent: files of type image/svg+xml are not allowed" }).waitFor();
    await bob.page.locator("#messages li.failed", { hasText: "evil.svg" }).waitFor();
    // Too large: refused before a byte is sent, with the limit.
    await bob.page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(21 * 1024 * 1024)], "huge.zip", { type: "application/zip" }));
      document.getElementById("text").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    });
    await bob.page.locator("#notice", { hasText: "larger than the limit of 20 MiB" }).waitFor();
    await bob.page.locator("#messages li.failed", { hasText: "huge.zip" }).waitFor();
  });

  await t.test("unread badges, empty room, topic", async () => {
    // Bob is in the launch party; a message in the after party counts for
    // him, and Ada's own message (sent from elsewhere) does not count for her.
    const resp = await fetch(`${env("BRIDGE_URL")}/_openmeet/client/v1/rooms/events/afterparty/send/${txn("elsewhere")}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${env("TOKEN_ADA")}`, "Content-Type": "application/json" },
      body: JSON.stringify({ body: "first in the after party" }),
    });
    assert.equal(resp.status, 200, await resp.text());
    await badge(bob.page, ROOM2).filter({ hasText: "1" }).waitFor();
    // The open room never gets a badge, whatever arrives in it.
    await send(ada.page, "in the open room");
    await bodies(bob.page, "in the open room").waitFor();
    // Ada's stream has had the after party's message by the time her own
    // later one comes back.
    await item(ada.page, "in the open room").and(ada.page.locator("[data-event-id]")).waitFor();
    assert.equal(await badge(bob.page, ROOM).count(), 0);
    assert.equal(await badge(ada.page, ROOM2).count(), 0);
    assert.equal(await badge(ada.page, ROOM).count(), 0);
    // Opening the room clears its badge and shows its topic.
    await open(bob.page, ROOM2);
    await bob.page.locator("#room-topic", { hasText: "Drinks after the launch" }).waitFor();
    await badge(bob.page, ROOM2).waitFor({ state: "detached" });
    await bodies(bob.page, "first in the after party").waitFor();
    assert.equal(await bob.page.locator("#empty").isVisible(), false);
    // An empty room says so.
    await open(ada.page, "Quiet corner");
    await ada.page.locator("#empty", { hasText: "No messages yet" }).waitFor();
  });

  await t.test("favicon", async () => {
    const resp = await fetch(`${env("BRIDGE_URL")}/favicon.ico`);
    assert.equal(resp.status, 200);
    assert.equal(resp.headers.get("content-type"), "image/x-icon");
    const icon = await ada.page.locator('link[rel="icon"]').getAttribute("href");
    assert.equal((await fetch(new URL(icon, `${env("BRIDGE_URL")}/_openmeet/web/`))).status, 200);
  });

  await t.test("no alerts or other dialogs, no uncaught errors", () => {
    assert.deepEqual(dialogs, []);
    assert.deepEqual(pageErrors, []);
  });

  if (process.env.SCREENSHOT) await bob.page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
});
