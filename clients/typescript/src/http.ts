// The one place that talks HTTP for both clients: JSON in and out, Matrix
// errors into BridgeError, failed fetches into NetworkError.
import { BridgeError, ErrCode, NetworkError } from "./errors.js";
import { parseRetryAfter, sleep } from "./backoff.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
}

export interface RequestSpec {
  method: "GET" | "PUT" | "POST" | "DELETE";
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** A body sent as it is (a file), with its Content-Type in headers; instead of body. */
  rawBody?: Blob;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Joins the base URL, the path and the query; undefined values are left out. */
export function buildURL(baseUrl: string, path: string, query?: RequestSpec["query"]): string {
  let url = baseUrl.replace(/\/+$/, "") + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) params.set(key, String(value));
    }
    const qs = params.toString();
    if (qs) url += "?" + qs;
  }
  return url;
}

/** Percent-encodes one path segment. */
export const seg = (s: string): string => encodeURIComponent(s);

/** Sends one request; 2xx answers are returned, others thrown as BridgeError. */
export async function send<T>(fetchImpl: FetchLike, baseUrl: string, spec: RequestSpec): Promise<Answer<T>> {
  const headers: Record<string, string> = { Accept: "application/json", ...spec.headers };
  const init: RequestInit = { method: spec.method, headers, cache: "no-store" };
  if (spec.signal) init.signal = spec.signal;
  if (spec.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(spec.body);
  } else if (spec.rawBody !== undefined) {
    init.body = spec.rawBody;
  }
  let resp: Response;
  try {
    resp = await fetchImpl(buildURL(baseUrl, spec.path, spec.query), init);
  } catch (err) {
    throw asNetworkError(err);
  }
  let body: unknown;
  try {
    body = await readBody(resp);
  } catch (err) {
    throw asNetworkError(err);
  }
  if (resp.status < 200 || resp.status > 299) throw errorFrom(resp, body);
  return { status: resp.status, headers: resp.headers, body: body as T };
}

async function readBody(resp: Response): Promise<unknown> {
  const text = await resp.text();
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Rethrows aborts as they are; anything else a failed fetch throws is a NetworkError. */
export function asNetworkError(err: unknown): Error {
  if (isAbort(err)) return err as Error;
  const message = err instanceof Error ? err.message : String(err);
  return new NetworkError(message, { cause: err });
}

export function isAbort(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { name?: string }).name === "AbortError";
}

/** Turns a non-2xx answer into a BridgeError. */
export function errorFrom(resp: Response, body: unknown, now = Date.now()): BridgeError {
  let errcode: string = ErrCode.Unknown;
  let message = `HTTP ${resp.status}${resp.statusText ? " " + resp.statusText : ""}`;
  let retryAfterMs = parseRetryAfter(resp.headers.get("Retry-After"), now);
  if (typeof body === "object" && body !== null) {
    const b = body as { errcode?: unknown; error?: unknown; retry_after_ms?: unknown };
    if (typeof b.errcode === "string") errcode = b.errcode;
    if (typeof b.error === "string" && b.error !== "") message = b.error;
    if (typeof b.retry_after_ms === "number" && b.retry_after_ms >= 0) retryAfterMs = b.retry_after_ms;
  } else if (typeof body === "string" && body.trim() !== "") {
    message += ": " + body.trim().slice(0, 200);
  }
  return new BridgeError(resp.status, errcode, message, body, retryAfterMs);
}

/** How a request refused with 429 M_LIMIT_EXCEEDED is tried again. */
export interface RateLimitRetry {
  /** Tries after the first (default 3); 0 throws the first 429. */
  retries?: number;
  /** A longer wait than this (ms, default 60000) is not waited for: the 429 is thrown. */
  maxWaitMs?: number;
}

/**
 * Runs attempt, and again after the wait the bridge names (retry_after_ms
 * or Retry-After) each time it answers 429 M_LIMIT_EXCEEDED, up to
 * opts.retries times; then, or for a wait longer than opts.maxWaitMs, the
 * 429 is thrown with its retryAfterMs.
 */
export async function retryRateLimited<T>(attempt: () => Promise<T>, opts: RateLimitRetry = {}, signal?: AbortSignal): Promise<T> {
  const retries = opts.retries ?? 3;
  const maxWaitMs = opts.maxWaitMs ?? 60000;
  for (let tried = 0; ; tried++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof BridgeError) || err.status !== 429 || err.errcode !== ErrCode.LimitExceeded) throw err;
      const wait = err.retryAfterMs;
      if (tried >= retries || wait === undefined || wait > maxWaitMs) throw err;
      await sleep(wait, signal);
    }
  }
}
