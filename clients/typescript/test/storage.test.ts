import "fake-indexeddb/auto";
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { QueuedItem, QueueStorage } from "../src/queue.js";
import { IndexedDBQueueStorage } from "../src/storage/indexeddb.js";
import { MemoryQueueStorage } from "../src/storage/memory.js";

const item = (txnId: string, seq: number, body = "hi"): QueuedItem => ({
  txnId,
  seq,
  room: { kind: "events", slug: "party" },
  action: "send",
  body: { body },
  createdAt: 1,
  attempts: 0,
});

const sorted = async (s: QueueStorage) => (await s.load()).sort((a, b) => a.seq - b.seq);

for (const [name, make] of [
  ["MemoryQueueStorage", () => new MemoryQueueStorage()],
  ["IndexedDBQueueStorage", () => new IndexedDBQueueStorage({ namespace: `t/ada-${Math.random()}`, database: "test-queue" })],
] as const) {
  describe(name, () => {
    test("put, replace, load and delete by txn id", async () => {
      const s: QueueStorage = make();
      await s.put(item("b", 2));
      await s.put(item("a", 1));
      await s.put({ ...item("a", 1), attempts: 3, lastError: "offline" });
      assert.deepEqual(await sorted(s), [{ ...item("a", 1), attempts: 3, lastError: "offline" }, item("b", 2)]);
      await s.delete("a");
      await s.delete("never-there");
      assert.deepEqual(await sorted(s), [item("b", 2)]);
    });

    test("stored items are copies", async () => {
      const s: QueueStorage = make();
      const it = item("c", 1);
      await s.put(it);
      it.attempts = 99;
      assert.equal((await s.load())[0]!.attempts, 0);
    });
  });
}

describe("IndexedDBQueueStorage", () => {
  test("survives a new instance (a reloaded page) and keeps users apart", async () => {
    const first = new IndexedDBQueueStorage({ namespace: "t/ada", database: "test-reload" });
    await first.put(item("x", 1, "from ada"));
    await first.close();
    const bob = new IndexedDBQueueStorage({ namespace: "t/bob", database: "test-reload" });
    await bob.put(item("x", 1, "from bob"));
    const again = new IndexedDBQueueStorage({ namespace: "t/ada", database: "test-reload" });
    assert.deepEqual((await again.load()).map((i) => i.body.body), ["from ada"]);
    assert.deepEqual((await bob.load()).map((i) => i.body.body), ["from bob"]);
    // A namespace that is a prefix of another's is still its own.
    const prefix = new IndexedDBQueueStorage({ namespace: "t/ad", database: "test-reload" });
    assert.deepEqual(await prefix.load(), []);
  });

  test("needs a namespace", () => {
    assert.throws(() => new IndexedDBQueueStorage({ namespace: "" }), /namespace/);
  });
});
