// Reconnect and retry delays: exponential with jitter, never earlier than
// the server asked.

export interface BackoffOptions {
  /** First delay, in ms (default 1000). The stream's `retry:` field replaces it. */
  initialMs?: number;
  /** Largest delay, in ms (default 30000). A server's Retry-After may exceed it. */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Random source in [0, 1); replaceable for tests. */
  random?: () => number;
}

/**
 * Backoff gives the delay before each retry: attempt n waits a random time
 * between half and all of min(maxMs, initialMs·factor^n) ("equal jitter", so
 * clients cut off together do not come back together, and none retries at
 * once). A server hint (Retry-After, retry_after_ms) is a floor: the delay
 * is at least the hint plus up to 10 % (at most 1 s) of jitter.
 */
export class Backoff {
  initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  private readonly random: () => number;
  private attempts = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 1000;
    this.maxMs = opts.maxMs ?? 30000;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** The delay before the next try; hintMs is the server's wish, if any. */
  next(hintMs?: number): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, this.attempts));
    this.attempts++;
    const jittered = ceiling / 2 + this.random() * (ceiling / 2);
    if (hintMs === undefined || !(hintMs >= 0)) return Math.round(jittered);
    const hinted = hintMs + this.random() * Math.min(hintMs * 0.1, 1000);
    return Math.round(Math.max(jittered, hinted));
  }

  /** Starts over after a success. */
  reset(): void {
    this.attempts = 0;
  }
}

/**
 * Parses a Retry-After header: delay-seconds or an HTTP date. Returns ms, or
 * undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP date names its day and month; anything else (a negative or
  // fractional number) is unreadable, though Date.parse might take it.
  if (!/^[A-Za-z]{3}, /.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Resolves after ms, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Waker is a sleep that can be cut short: wait(ms) resolves after ms, or as
 * soon as wake() is called (the browser came back online, the stream
 * reconnected) or the signal aborts.
 */
export class Waker {
  private wakers = new Set<() => void>();

  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Ends every wait now. */
  wake(): void {
    for (const done of [...this.wakers]) done();
  }
}
