/** Error codes the bridge answers with (Matrix ones and its own). */
export const ErrCode = {
  Forbidden: "M_FORBIDDEN",
  MissingToken: "M_MISSING_TOKEN",
  UnknownToken: "M_UNKNOWN_TOKEN",
  NotJSON: "M_NOT_JSON",
  BadJSON: "M_BAD_JSON",
  InvalidParam: "M_INVALID_PARAM",
  TooLarge: "M_TOO_LARGE",
  NotFound: "M_NOT_FOUND",
  Unrecognized: "M_UNRECOGNIZED",
  LimitExceeded: "M_LIMIT_EXCEEDED",
  DuplicateAnnotation: "M_DUPLICATE_ANNOTATION",
  Unknown: "M_UNKNOWN",
  PortalClosed: "NET.OPENMEET.PORTAL_CLOSED",
  /** The txn id was already used for another request; nothing was done. */
  TxnConflict: "NET.OPENMEET.TXN_CONFLICT",
} as const;

/**
 * A refusal from the bridge: any answer that is not 2xx. `errcode` and the
 * message come from the Matrix-style body; a body that is not one (a proxy's
 * error page) gives errcode M_UNKNOWN and the status text.
 */
export class BridgeError extends Error {
  override readonly name = "BridgeError";
  /** HTTP status. */
  readonly status: number;
  /** Matrix errcode, e.g. M_FORBIDDEN or NET.OPENMEET.PORTAL_CLOSED. */
  readonly errcode: string;
  /** The parsed body (the error object, or what else the bridge sent). */
  readonly body: unknown;
  /** When to try again, from `retry_after_ms` or `Retry-After`, if given. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, errcode: string, message: string, body?: unknown, retryAfterMs?: number) {
    super(message);
    this.status = status;
    this.errcode = errcode;
    this.body = body;
    this.retryAfterMs = retryAfterMs;
  }

  /** Worth retrying with the same request: rate limits, 5xx, timeouts. */
  get transient(): boolean {
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** The bridge could not be reached (offline, DNS, connection reset, CORS). */
export class NetworkError extends Error {
  override readonly name = "NetworkError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A queued send the bridge refused for good; it is not retried. */
export class SendFailedError extends Error {
  override readonly name = "SendFailedError";
  readonly txnId: string;
  /** The refusal: a BridgeError, or the outbox's last error for state "failed". */
  override readonly cause: unknown;
  constructor(txnId: string, message: string, cause: unknown) {
    super(message);
    this.txnId = txnId;
    this.cause = cause;
  }
}

export function isBridgeError(err: unknown, errcode?: string): err is BridgeError {
  return err instanceof BridgeError && (errcode === undefined || err.errcode === errcode);
}
