// An incremental parser of text/event-stream as the HTML standard defines it
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream),
// fed with decoded text in chunks of any size: a line, even a CRLF, may be
// split across chunks.

/** One dispatched event. */
export interface SSEFrame {
  /** The event: name; "message" when the frame has none. */
  event: string;
  /** The data: lines joined with "\n". */
  data: string;
  /**
   * The stream's last event ID after this frame: the frame's own id: or,
   * without one, the last one before it (as EventSource's lastEventId).
   */
  lastEventId: string;
  /** Whether this frame carried an id: field itself. */
  hasId: boolean;
}

export interface SSEHandlers {
  /** A frame with data. */
  onFrame?(frame: SSEFrame): void;
  /**
   * The last event ID changed; also for a frame without data (`id: 7` then a
   * blank line), which dispatches no event but sets the position.
   */
  onId?(id: string): void;
  /** A retry: field, in ms. */
  onRetry?(ms: number): void;
  /** A comment line (":" and text), such as a heartbeat. */
  onComment?(text: string): void;
}

export class SSEParser {
  private buffer = "";
  private sawCR = false;
  private first = true;
  private data: string[] = [];
  private eventName = "";
  private idBuffer: string;
  private frameHasId = false;
  private lastId: string;

  /** initialId is the last event ID the stream resumes from, if any. */
  constructor(private readonly handlers: SSEHandlers, initialId = "") {
    this.idBuffer = initialId;
    this.lastId = initialId;
  }

  /** The stream's last event ID so far. */
  get lastEventId(): string {
    return this.lastId;
  }

  /** Feeds decoded text. */
  feed(chunk: string): void {
    if (chunk === "") return;
    if (this.first) {
      this.first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    const text = this.buffer + chunk;
    this.buffer = "";
    let start = 0;
    // A CR that ended the last chunk already ended its line; a LF right after
    // it belongs to that CRLF.
    if (this.sawCR && text.charCodeAt(0) === 0x0a) start = 1;
    this.sawCR = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      this.line(text.slice(start, i));
      if (c === 0x0d) {
        if (i + 1 === text.length) {
          this.sawCR = true;
        } else if (text.charCodeAt(i + 1) === 0x0a) {
          i++;
        }
      }
      start = i + 1;
    }
    this.buffer = text.slice(start);
  }

  /**
   * The stream ended. An unterminated last frame is dropped, as the standard
   * says: only a blank line dispatches.
   */
  end(): void {
    this.buffer = "";
    this.sawCR = false;
    this.data = [];
    this.eventName = "";
    this.frameHasId = false;
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a) {
      this.handlers.onComment?.(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    }
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.eventName = value;
        break;
      case "id":
        if (!value.includes("\u0000")) {
          this.idBuffer = value;
          this.frameHasId = true;
        }
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
        break;
      default:
      // Unknown fields are ignored.
    }
  }

  private dispatch(): void {
    const hasId = this.frameHasId;
    if (this.idBuffer !== this.lastId) {
      this.lastId = this.idBuffer;
      this.handlers.onId?.(this.lastId);
    }
    const data = this.data;
    const name = this.eventName;
    this.data = [];
    this.eventName = "";
    this.frameHasId = false;
    if (data.length === 0) return;
    this.handlers.onFrame?.({ event: name || "message", data: data.join("\n"), lastEventId: this.lastId, hasId });
  }
}
