// @openmeet/bridge-client: typed clients of openmeet-bridge's provisioning
// API (for the OpenMeet backend) and client API with its event stream (for
// the browser). No dependencies beyond fetch, streams and, if chosen,
// EventSource and IndexedDB.
export { ProvisioningClient, type ProvisioningClientOptions, type Outcome } from "./provisioning.js";
export {
  ChatClient,
  pathKind,
  type ChatClientOptions,
  type ChatClientEvents,
  type HistoryPage,
  type MembersNotice,
  type QueuedSend,
  type ResetNotice,
} from "./chat.js";
export { BridgeError, NetworkError, SendFailedError, ErrCode, isBridgeError } from "./errors.js";
export { toChatEvent, StreamEventName, streamEventNames } from "./events.js";
export type {
  ChatEvent,
  ChatEventKind,
  ChatMessage,
  ChatEdit,
  ChatReaction,
  ChatRedaction,
  ChatMember,
  ChatTyping,
  ChatReceipt,
  ChatUnknown,
  Receipt,
} from "./events.js";
export { SendQueue, newTxnId, type QueueStorage, type QueuedItem, type QueuedAction, type QueueUpdate, type SendResult, type QueueOptions } from "./queue.js";
export { MemoryQueueStorage } from "./storage/memory.js";
export { IndexedDBQueueStorage, type IndexedDBQueueOptions } from "./storage/indexeddb.js";
export { EventStream, type StreamOptions, type StreamStatus, type StreamState, type EventSourceCtor } from "./stream.js";
export { SSEParser, type SSEFrame, type SSEHandlers } from "./sse.js";
export { Backoff, parseRetryAfter, type BackoffOptions } from "./backoff.js";
export type { TokenProvider } from "./auth.js";
export type { FetchLike, RateLimitRetry } from "./http.js";
export type * from "./types.js";
export type { paths, components } from "./generated/openapi.js";
