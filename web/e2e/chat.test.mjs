// Two OpenMeet users chat through the demo page in headless Chromium, with
// the real bridge and Synapse behind it. The Go test in web/ starts those
// and passes their addresses and tokens in the environment.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run this through go test ./web/`);
  return value;
};
const page = (base, token) => `${base}/_openmeet/web/#token=${encodeURIComponent(token)}`;

async function signedIn(browser, base, token) {
  const context = await browser.newContext();
  const p = await context.newPage();
  p.on("dialog", (d) => d.dismiss());
  await p.goto(page(base, token));
  await p.locator("#connection", { hasText: "live" }).waitFor();
  await p.locator("#rooms li").first().waitFor();
  return { context, page: p };
}

const messages = (p, text) => p.locator("#messages li .body", { hasText: text });

async function send(p, text) {
  await p.fill("#text", text);
  await p.press("#text", "Enter");
}

test("two users chat, one drops offline and catches up", { timeout: 120000 }, async () => {
  const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox"] });
  try {
    const ada = await signedIn(browser, env("BRIDGE_URL"), env("TOKEN_ADA"));
    // Bob's traffic goes through a proxy that can drop his connections.
    const bob = await signedIn(browser, env("PROXY_URL"), env("TOKEN_BOB"));

    await send(ada.page, "hello bob");
    await messages(bob.page, "hello bob").waitFor();
    const sender = bob.page.locator("#messages li", { hasText: "hello bob" }).locator(".sender");
    assert.equal(await sender.textContent(), "Ada Lovelace");
    // Ada's optimistic copy is replaced, not doubled.
    await ada.page.locator("#messages li.pending").waitFor({ state: "detached" });
    assert.equal(await messages(ada.page, "hello bob").count(), 1);

    // Ada typing shows her name on Bob's page, and sending clears it.
    await ada.page.fill("#text", "are you there");
    await bob.page.locator("#typing", { hasText: "Ada Lovelace is typing" }).waitFor();
    await ada.page.press("#text", "Enter");
    await messages(bob.page, "are you there").waitFor();
    await bob.page.waitForFunction(() => document.getElementById("typing").textContent === "");

    // Bob's network drops: offline, and his open stream is cut. Ada keeps
    // talking; Bob comes back and sees it all, once, without a reload.
    await bob.context.setOffline(true);
    assert.equal((await fetch(env("CUT_URL"))).status, 204);
    await bob.page.locator("#connection", { hasText: "reconnecting" }).waitFor();
    await send(ada.page, "while you were away 1");
    await send(ada.page, "while you were away 2");
    await messages(ada.page, "while you were away 2").waitFor();
    await bob.context.setOffline(false);
    await messages(bob.page, "while you were away 1").waitFor({ timeout: 30000 });
    await messages(bob.page, "while you were away 2").waitFor({ timeout: 30000 });
    await bob.page.locator("#connection", { hasText: "live" }).waitFor();
    assert.equal(await messages(bob.page, "while you were away 1").count(), 1);
    assert.equal(await messages(bob.page, "while you were away 2").count(), 1);

    // An ordinary Matrix user in the same room, shown with their name.
    const resp = await fetch(`${env("SYNAPSE_URL")}/_matrix/client/v3/rooms/${encodeURIComponent(env("ROOM_ID"))}/send/m.room.message/e2e-${Date.now()}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${env("ALICE_TOKEN")}`, "Content-Type": "application/json" },
      body: JSON.stringify({ msgtype: "m.text", body: "hi from element" }),
    });
    assert.equal(resp.status, 200);
    await messages(ada.page, "hi from element").waitFor();
    const aliceName = ada.page.locator("#messages li", { hasText: "hi from element" }).locator(".sender");
    assert.equal(await aliceName.textContent(), env("ALICE_NAME"));

    if (process.env.SCREENSHOT) await bob.page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  } finally {
    await browser.close();
  }
});
