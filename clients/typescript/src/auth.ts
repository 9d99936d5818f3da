import { BridgeError } from "./errors.js";
import { send, type Answer, type FetchLike, type RequestSpec } from "./http.js";

/**
 * Supplies OpenMeet's JWT. refresh is true after the bridge refused the last
 * token (401): return a new one (refresh the session), not a cached copy.
 */
export type TokenProvider = (ctx: { refresh: boolean }) => string | Promise<string>;

/**
 * TokenSource caches the provider's token and asks again, once, when the
 * bridge answers 401; concurrent 401s share one refresh.
 */
export class TokenSource {
  private current: Promise<string> | undefined;

  constructor(private readonly provider: TokenProvider) {}

  get(): Promise<string> {
    this.current ??= this.ask(false);
    return this.current;
  }

  /** A fresh token after stale was refused (unless another refresh already replaced it). */
  async refresh(stale: string): Promise<string> {
    const now = this.current ? await this.current.catch(() => undefined) : undefined;
    if (now !== undefined && now !== stale) return now;
    this.current = this.ask(true);
    return this.current;
  }

  /** Forgets the cached token: the next request asks the provider. */
  clear(): void {
    this.current = undefined;
  }

  private ask(refresh: boolean): Promise<string> {
    const p = Promise.resolve()
      .then(() => this.provider({ refresh }))
      .then((token) => {
        if (typeof token !== "string" || token === "") throw new Error("token provider returned no token");
        return token;
      });
    // A failed provider call is not cached: the next request asks again.
    p.catch(() => {
      if (this.current === p) this.current = undefined;
    });
    return p;
  }
}

/**
 * Sends a request with the bearer token; on 401 it gets a fresh token and
 * tries once more. A second 401 is thrown.
 */
export async function sendAuthed<T>(fetchImpl: FetchLike, baseUrl: string, tokens: TokenSource, spec: RequestSpec): Promise<Answer<T>> {
  const token = await tokens.get();
  try {
    return await send<T>(fetchImpl, baseUrl, withBearer(spec, token));
  } catch (err) {
    if (!(err instanceof BridgeError) || err.status !== 401) throw err;
  }
  const fresh = await tokens.refresh(token);
  return send<T>(fetchImpl, baseUrl, withBearer(spec, fresh));
}

function withBearer(spec: RequestSpec, token: string): RequestSpec {
  return { ...spec, headers: { ...spec.headers, Authorization: `Bearer ${token}` } };
}
