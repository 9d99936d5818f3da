import type { QueuedItem, QueueStorage } from "../queue.js";

/**
 * Keeps queued items in memory: they survive a reconnect, not a page
 * reload. Hand the same instance to a new ChatClient to carry a queue over
 * (tests use that to play a restart).
 */
export class MemoryQueueStorage implements QueueStorage {
  private readonly items = new Map<string, QueuedItem>();

  async load(): Promise<QueuedItem[]> {
    return [...this.items.values()].map(copy);
  }

  async put(item: QueuedItem): Promise<void> {
    this.items.set(item.txnId, copy(item));
  }

  async delete(txnId: string): Promise<void> {
    this.items.delete(txnId);
  }

  /** How many items are stored. */
  get size(): number {
    return this.items.size;
  }
}

// Stored copies, as a real store keeps them: later changes to the queue's
// own objects must not reach the stored ones without a put.
function copy(item: QueuedItem): QueuedItem {
  return JSON.parse(JSON.stringify(item)) as QueuedItem;
}
