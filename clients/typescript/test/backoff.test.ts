import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Backoff, parseRetryAfter, Waker } from "../src/backoff.js";
import { fixedRandom } from "./helpers.js";

describe("Backoff", () => {
  test("doubles up to the cap, each delay between half and all of its ceiling", () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    assert.deepEqual(
      Array.from({ length: 6 }, () => low.next()),
      [50, 100, 200, 400, 500, 500],
    );
    assert.deepEqual(
      Array.from({ length: 6 }, () => high.next()),
      [100, 200, 400, 800, 1000, 1000],
    );
  });

  test("jitter spreads clients cut off together", () => {
    const delays = new Set<number>();
    for (let i = 0; i < 20; i++) delays.add(new Backoff({ initialMs: 1000 }).next());
    assert.ok(delays.size > 10, `only ${delays.size} distinct delays`);
    for (const d of delays) assert.ok(d >= 500 && d <= 1000, `delay ${d}`);
  });

  test("reset starts over", () => {
    const b = new Backoff({ initialMs: 100, random: () => 0.999999 });
    b.next();
    b.next();
    assert.equal(b.attempt, 2);
    b.reset();
    assert.equal(b.next(), 100);
  });

  test("a server hint is a floor, with a little jitter above it", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: fixedRandom(0, 0.5) });
    // ceiling 100 → 50; hint 5000 + 0.5·min(500, 1000) = 5250
    assert.equal(b.next(5000), 5250);
    // a hint below the backoff does not shorten it: ceiling 200 → 100, hint 10 + 0
    assert.equal(b.next(10), 100);
    // Retry-After beyond maxMs is still honoured
    assert.ok(new Backoff({ maxMs: 1000 }).next(60000) >= 60000);
  });
});

describe("parseRetryAfter", () => {
  test("seconds, HTTP dates, and nothing for garbage", () => {
    const now = Date.parse("2025-01-01T00:00:00Z");
    assert.equal(parseRetryAfter("5", now), 5000);
    assert.equal(parseRetryAfter(" 0 ", now), 0);
    assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:30 GMT", now), 30000);
    assert.equal(parseRetryAfter("Tue, 31 Dec 2024 23:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter("soon", now), undefined);
    assert.equal(parseRetryAfter("-1", now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });
});

describe("Waker", () => {
  test("wake ends a wait early", async () => {
    const w = new Waker();
    const start = Date.now();
    const waiting = w.wait(10000);
    setTimeout(() => w.wake(), 10);
    await waiting;
    assert.ok(Date.now() - start < 5000);
  });
});
