// Typed chat events from stream payloads and history items. The type is
// read from the Matrix event inside the data, never from the SSE event:
// name, which the bridge limits to a fixed set (other types arrive as
// "m.event").
import type { MatrixEvent, MediaURLs, PortalInfo, StreamPayload, StreamUser } from "./types.js";

/** The SSE event: names the bridge uses. */
export const StreamEventName = {
  Message: "m.room.message",
  Reaction: "m.reaction",
  Redaction: "m.room.redaction",
  Member: "m.room.member",
  Typing: "m.typing",
  Receipt: "m.receipt",
  /** Every other Matrix event type (room name, topic, state, custom). */
  Other: "m.event",
  /** The position is outside the stream's retention: reload history. */
  Reset: "reset",
  /** Others' membership of a room changed while the stream was behind. */
  Members: "members",
} as const;

/** Every name an EventSource must listen to ("message" is a frame without event:). */
export const streamEventNames: readonly string[] = [...Object.values(StreamEventName), "message", "position"];

interface Base {
  /** The Matrix event type, from the event itself. */
  type: string;
  roomId: string;
  portal?: PortalInfo;
  sender?: StreamUser;
  /** The Matrix event ID (absent for typing and receipts). */
  eventId?: string;
  /** Stream position; absent in history and for typing and receipts. */
  position?: number;
  /** For the user's own messages and reactions sent through the bridge: the client's txn id. */
  txnId?: string;
  /** When the homeserver received it. */
  ts?: number;
  /** True for the stream, false for history. */
  live: boolean;
  event: MatrixEvent;
  payload: StreamPayload;
  /** URLs of the event's file, thumbnail and avatars that a page can load directly (an <img> needs no token). */
  media?: MediaURLs;
}

export interface ChatMessage extends Base {
  kind: "message";
  msgtype: string;
  body: string;
  formattedBody?: string;
  /** The event this one replies to. */
  replyTo?: string;
}

export interface ChatEdit extends Base {
  kind: "edit";
  /** The message that is replaced. */
  targetEventId: string;
  body: string;
  formattedBody?: string;
}

export interface ChatReaction extends Base {
  kind: "reaction";
  targetEventId: string;
  key: string;
}

export interface ChatRedaction extends Base {
  kind: "redaction";
  /** The removed event (a message, an edit or a reaction). */
  redacts: string;
  reason?: string;
}

export interface ChatMember extends Base {
  kind: "member";
  /** Whose membership: the state key. */
  userId: string;
  membership: string;
  displayname?: string;
}

export interface ChatTyping extends Base {
  kind: "typing";
  /** Everyone typing in the room now (an empty list: nobody). */
  userIds: string[];
  users: StreamUser[];
}

export interface Receipt {
  eventId: string;
  userId: string;
  /** m.read or m.read.private. */
  receiptType: string;
  ts?: number;
  threadId?: string;
}

export interface ChatReceipt extends Base {
  kind: "receipt";
  receipts: Receipt[];
  users: StreamUser[];
}

/** Any other type (room name, topic, power levels, custom events), or a payload without event. */
export interface ChatUnknown extends Base {
  kind: "unknown";
}

export type ChatEvent =
  | ChatMessage
  | ChatEdit
  | ChatReaction
  | ChatRedaction
  | ChatMember
  | ChatTyping
  | ChatReceipt
  | ChatUnknown;

export type ChatEventKind = ChatEvent["kind"];

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const obj = (v: unknown): Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/**
 * Turns a stream payload or a history item into a typed event. live says
 * where it came from; position is the frame's id: when the payload lacks
 * stream_pos.
 */
export function toChatEvent(payload: StreamPayload, live: boolean, position?: number): ChatEvent {
  const event = obj(payload.event) as MatrixEvent;
  const content = obj(event.content);
  const rel = obj(content["m.relates_to"]);
  const base: Base = {
    type: str(event.type) ?? "",
    roomId: payload.room_id ?? str(event.room_id) ?? "",
    live,
    event,
    payload,
  };
  if (payload.portal) base.portal = payload.portal;
  if (payload.sender) base.sender = payload.sender;
  if (payload.media) base.media = payload.media;
  if (str(event.event_id)) base.eventId = event.event_id as string;
  const pos = payload.stream_pos ?? position;
  if (pos !== undefined && pos > 0) base.position = pos;
  if (payload.txn_id) base.txnId = payload.txn_id;
  if (typeof event.origin_server_ts === "number") base.ts = event.origin_server_ts;

  switch (base.type) {
    case "m.room.message": {
      if (rel.rel_type === "m.replace" && str(rel.event_id)) {
        const next = obj(content["m.new_content"]);
        const body = str(next.body) ?? str(content.body)?.replace(/^\* /, "") ?? "";
        const edit: ChatEdit = { ...base, kind: "edit", targetEventId: rel.event_id as string, body };
        const formatted = str(next.formatted_body);
        if (formatted !== undefined) edit.formattedBody = formatted;
        return edit;
      }
      const msg: ChatMessage = { ...base, kind: "message", msgtype: str(content.msgtype) ?? "", body: str(content.body) ?? "" };
      const formatted = str(content.formatted_body);
      if (formatted !== undefined) msg.formattedBody = formatted;
      const replyTo = str(obj(rel["m.in_reply_to"]).event_id);
      if (replyTo) msg.replyTo = replyTo;
      return msg;
    }
    case "m.reaction":
      if (rel.rel_type === "m.annotation" && str(rel.event_id) && str(rel.key) !== undefined) {
        return { ...base, kind: "reaction", targetEventId: rel.event_id as string, key: rel.key as string };
      }
      break;
    case "m.room.redaction": {
      // Room versions up to 10 carry redacts at the top, 11 and later in content.
      const redacts = str(content.redacts) ?? str(event.redacts);
      if (redacts) {
        const r: ChatRedaction = { ...base, kind: "redaction", redacts };
        const reason = str(content.reason);
        if (reason !== undefined) r.reason = reason;
        return r;
      }
      break;
    }
    case "m.room.member": {
      const userId = str(event.state_key);
      if (userId !== undefined) {
        const m: ChatMember = { ...base, kind: "member", userId, membership: str(content.membership) ?? "" };
        const name = str(content.displayname);
        if (name !== undefined) m.displayname = name;
        return m;
      }
      break;
    }
    case "m.typing": {
      const ids = Array.isArray(content.user_ids) ? content.user_ids.filter((u): u is string => typeof u === "string") : [];
      return { ...base, kind: "typing", userIds: ids, users: payload.users ?? [] };
    }
    case "m.receipt":
      return { ...base, kind: "receipt", receipts: receiptsOf(content), users: payload.users ?? [] };
  }
  return { ...base, kind: "unknown" };
}

// Receipt content: {event ID: {receipt type: {user ID: {ts, thread_id}}}}.
function receiptsOf(content: Record<string, unknown>): Receipt[] {
  const out: Receipt[] = [];
  for (const [eventId, byType] of Object.entries(content)) {
    for (const [receiptType, byUser] of Object.entries(obj(byType))) {
      for (const [userId, r] of Object.entries(obj(byUser))) {
        const receipt: Receipt = { eventId, userId, receiptType };
        const ts = obj(r).ts;
        if (typeof ts === "number") receipt.ts = ts;
        const thread = str(obj(r).thread_id);
        if (thread !== undefined) receipt.threadId = thread;
        out.push(receipt);
      }
    }
  }
  return out;
}
