// Names for the shapes of api/openapi.yaml, taken from the generated types so
// that a change of the spec shows up here as a type error.
import type { components, paths } from "./generated/openapi.js";

type Schemas = components["schemas"];
type JSONOf<R> = R extends { content: { "application/json": infer T } } ? T : never;

/** Matrix-style error body: `{"errcode", "error"}`. */
export type ErrorBody = Schemas["Error"];

export type SyncState = Schemas["SyncState"];
export type UserRequest = Schemas["UserRequest"];
export type User = Schemas["User"];
export type PortalRequest = Schemas["PortalRequest"];
export type Portal = Schemas["Portal"];
export type PortalList = Schemas["PortalList"];
export type MemberRequest = Schemas["MemberRequest"];
export type Member = Schemas["Member"];
export type BatchRequest = Schemas["BatchRequest"];
/** The portal after a membership change. */
export type BatchResult = JSONOf<components["responses"]["Batch"]>;
export type Room = Schemas["Room"];
/** One room with the user's power level and the level needed to remove others' events. */
export type RoomDetail = Schemas["RoomDetail"];
/** The data of one stream event, also the items of a history page. */
export type StreamPayload = Schemas["StreamPayload"];
/** A Matrix user named as the stream names senders. */
export type StreamUser = NonNullable<StreamPayload["sender"]>;
export type PortalInfo = NonNullable<StreamPayload["portal"]>;
/** The data of a "members" event. */
export type StreamMembers = Schemas["StreamMembers"];
/** The data of a "reset" event. */
export type StreamReset = Schemas["StreamReset"];
/** The data of a "position" event: the stream's position alone. */
export type StreamPosition = Schemas["StreamPosition"];

/** An answer to send, edit, react or redact: the message in the bridge's outbox. */
export type SendResponse = Schemas["Send"];
/** An answer to upload: the file's message in the outbox, its mxc URI and signed URLs. */
export type UploadResponse = Schemas["Upload"];
/** Browser-usable URLs of an event's files and avatars (signed; relative to the bridge unless it has a public_url). */
export type MediaURLs = Schemas["MediaURLs"];
/** What may be uploaded. */
export interface MediaConfig {
  max_upload_bytes: number;
  allowed_types: string[];
}

const client = "/_openmeet/client/v1" as const;
export type Whoami = JSONOf<paths[`${typeof client}/whoami`]["get"]["responses"][200]>;
export type Ticket = JSONOf<paths[`${typeof client}/events/ticket`]["post"]["responses"][200]>;
/**
 * A page of history, newest first, with `stream_pos`: the stream position
 * the page is consistent with (see ChatClient.history).
 */
export type MessagesResponse = JSONOf<paths[`${typeof client}/rooms/{kind}/{slug}/messages`]["get"]["responses"][200]>;

type Body<P extends keyof paths, M extends "put" | "post"> = paths[P][M] extends { requestBody?: infer B }
  ? JSONOf<NonNullable<B>>
  : never;
export type SendRequest = Body<`${typeof client}/rooms/{kind}/{slug}/send/{txnId}`, "put">;
export type EditRequest = Body<`${typeof client}/rooms/{kind}/{slug}/edit/{txnId}`, "put">;
export type ReactRequest = Body<`${typeof client}/rooms/{kind}/{slug}/react/{txnId}`, "put">;
export type RedactRequest = Body<`${typeof client}/rooms/{kind}/{slug}/redact/{txnId}`, "put">;
export type TypingRequest = Body<`${typeof client}/rooms/{kind}/{slug}/typing`, "put">;

/**
 * Events or groups. Paths use the plural, portal and room objects the
 * singular; every method here takes either.
 */
export type PortalKind = "event" | "group" | "events" | "groups";

/** Names a portal's room: a Room, a stream payload's portal, or `{kind, slug}`. */
export interface RoomRef {
  kind: PortalKind | string;
  slug: string;
}

/** A Matrix event as the bridge relays it. */
export interface MatrixEvent {
  type: string;
  event_id?: string;
  room_id?: string;
  sender?: string;
  state_key?: string;
  origin_server_ts?: number;
  redacts?: string;
  content?: Record<string, unknown>;
  unsigned?: Record<string, unknown>;
  [key: string]: unknown;
}
