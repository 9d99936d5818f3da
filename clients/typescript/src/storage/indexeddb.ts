import type { QueuedItem, QueueStorage } from "../queue.js";

export interface IndexedDBQueueOptions {
  /**
   * Keeps one user's queue apart from another's on the same browser, e.g.
   * `${tenant}/${userSlug}`: a queue is sent with the signed-in user's token.
   */
  namespace: string;
  /** Database name (default "openmeet-bridge-client"). */
  database?: string;
  /** The IndexedDB factory; default globalThis.indexedDB. */
  indexedDB?: IDBFactory;
}

const STORE = "send-queue";

/**
 * Keeps queued items in IndexedDB, so that messages written offline are
 * still sent after the tab is closed and opened again.
 */
export class IndexedDBQueueStorage implements QueueStorage {
  private db: Promise<IDBDatabase> | undefined;
  private readonly namespace: string;
  private readonly name: string;
  private readonly factory: IDBFactory | undefined;

  constructor(opts: IndexedDBQueueOptions) {
    if (!opts.namespace) throw new Error("IndexedDBQueueStorage needs a namespace (the signed-in user)");
    this.namespace = opts.namespace;
    this.name = opts.database ?? "openmeet-bridge-client";
    this.factory = opts.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  }

  async load(): Promise<QueuedItem[]> {
    const store = await this.store("readonly");
    // Keys are [namespace, txnId]; an array sorts after every string, so
    // [namespace] .. [namespace, []] holds exactly this namespace's keys.
    const range = IDBKeyRange.bound([this.namespace], [this.namespace, []]);
    const rows = await request<{ item: QueuedItem }[]>(store.getAll(range));
    return rows.map((r) => r.item);
  }

  async put(item: QueuedItem): Promise<void> {
    const store = await this.store("readwrite");
    await done(store.transaction, store.put({ key: [this.namespace, item.txnId], item }));
  }

  async delete(txnId: string): Promise<void> {
    const store = await this.store("readwrite");
    await done(store.transaction, store.delete([this.namespace, txnId]));
  }

  /** Closes the database connection. */
  async close(): Promise<void> {
    if (this.db) (await this.db).close();
    this.db = undefined;
  }

  private async store(mode: IDBTransactionMode): Promise<IDBObjectStore> {
    this.db ??= this.open();
    const db = await this.db;
    return db.transaction(STORE, mode).objectStore(STORE);
  }

  private open(): Promise<IDBDatabase> {
    const factory = this.factory;
    if (!factory) return Promise.reject(new Error("IndexedDB is not available"));
    const req = factory.open(this.name, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(STORE, { keyPath: "key" });
    };
    const opened = request(req);
    opened.catch(() => {
      this.db = undefined;
    });
    return opened;
  }
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

// A write counts once its transaction has committed, not when the request succeeds.
function done(tx: IDBTransaction, _req: IDBRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}
