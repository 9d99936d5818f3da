// Two OpenMeet users chat through the demo page in headless Chromium, with
// the real bridge and Synapse behind it, and an ordinary Matrix user
// (Alice) in the same room. The Go test in web/ starts those and passes
// their addresses and tokens in the environment. Bob's traffic goes through
// a proxy that can cut every open connection (CUT_URL).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

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
