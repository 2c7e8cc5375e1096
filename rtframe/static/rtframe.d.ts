// Type declarations for rtframe.js, the browser client of rtframe (docs/client.md).

/** Where a message of a history group sits in its group's history. */
export interface Position {
  epoch: string;
  offset: number;
}

/** The `$pos` member of every message sent to a history group. */
export interface StampedPosition extends Position {
  group: string;
}

/** Any message from the server: its `type`, its own fields, and `$pos` in history groups. */
export interface Message {
  type: string;
  $pos?: StampedPosition;
  [field: string]: unknown;
}

export interface RecoveryFrame {
  type: "$recovery";
  group: string;
  /** true: the `replayed` missed messages follow, in order; false: nothing follows. */
  recovered: boolean;
  replayed: number;
  /** Where the group is now. */
  epoch: string;
  offset: number;
}

export interface GapFrame {
  type: "$gap";
  group: string;
  reason: string;
}

export interface DroppedFrame {
  type: "$dropped";
  count: number;
}

export interface ReconnectFrame {
  type: "$reconnect";
  after_ms: number;
}

export interface PresenceEntry {
  id: string;
  user: unknown;
  connected_at: unknown;
  meta: unknown;
}

export interface PresenceFrame {
  type: "$presence";
  group: string;
  joined: PresenceEntry[];
  left: string[];
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export type StateEvent =
  | { state: "connecting"; attempt: number; url: string }
  | { state: "open"; attempt: number; recovering: boolean }
  | { state: "reconnecting"; attempt: number; delay: number; code: number; reason: string }
  | { state: "closed"; code: number; reason: string; unsent: number };

export interface OverflowEvent {
  policy: "drop-oldest" | "reject";
  /** The message dropped (drop-oldest) or refused (reject). */
  message: Message;
  /** Messages lost to overflow since the client was made. */
  total: number;
}

export interface InvalidFrameEvent {
  data: string;
  error: string;
}

/** The events `on` accepts, with what their handlers get. Other keys are message types. */
export interface EventMap {
  $state: StateEvent;
  $recovery: RecoveryFrame;
  $gap: GapFrame;
  $dropped: DroppedFrame;
  $reconnect: ReconnectFrame;
  $presence: PresenceFrame;
  $overflow: OverflowEvent;
  $invalid: InvalidFrameEvent;
  $binary: Blob | ArrayBuffer;
  "*": Message;
}

export type Handler<T> = (value: T, client: Client) => void;

export type Handlers = { [K in keyof EventMap]?: Handler<EventMap[K]> } & {
  [type: string]: Handler<any> | undefined;
};

export interface ClientOptions {
  /** Handlers by message type (or event name), as `client.on` takes them. */
  on?: Handlers;
  /** Milliseconds. Full jitter: attempt n waits uniform(0, min(max, initial * factor^(n-1))). Default 500 / 20000 / 2. */
  backoff?: { initial?: number; max?: number; factor?: number };
  /** The server's heartbeat, in seconds (default 25 and 10); false: never call the server dead. */
  heartbeat?: { interval?: number; timeout?: number } | false;
  /** Sends while disconnected. Default 100 messages, "drop-oldest"; size 0 refuses them. */
  buffer?: { size?: number; overflow?: "drop-oldest" | "reject" };
  /** Milliseconds a handshake may take before it is abandoned and retried (default 10000). */
  connectTimeout?: number;
  /** Milliseconds open after which the backoff starts over (default 5000). */
  stableAfter?: number;
  /** Consecutive failed attempts before the client gives up (default Infinity). */
  maxRetries?: number;
  /** Reconnect with `$since` to recover what was missed (default true). */
  recover?: boolean;
  /** Whether to reconnect after the server closed with `code` (default `isRetryable`). */
  shouldReconnect?: (code: number, reason: string) => boolean;
}

export type SendResult = "sent" | "queued" | "rejected";

export declare const FINAL_CLOSE_CODES: readonly number[];

export declare function isRetryable(code: number): boolean;

/** A plain-English sentence saying why a connection closed. */
export declare function describeClose(code: number, reason?: string): string;

/** A plain-English sentence for an error frame (`{"type": "error", "code", "detail"}`). */
export declare function describeError(frame: { code: string; detail?: string }): string;

export declare function connect(url: string | (() => string), options?: ClientOptions): Client;

export declare class Client {
  constructor(url: string | (() => string), options?: ClientOptions);
  readonly state: ConnectionState;
  /** Failed or ended connections since the last healthy one. */
  readonly attempt: number;
  /** Reconnect attempts, messages lost to a full buffer, frames that were not JSON. */
  readonly stats: { reconnects: number; overflowed: number; invalidFrames: number };
  on<K extends keyof EventMap>(type: K, fn: Handler<EventMap[K]>): () => void;
  on(type: string, fn: Handler<Message>): () => void;
  off(type: string, fn: Handler<any>): void;
  send(type: string, payload?: Record<string, unknown>): SendResult;
  sendMessage(message: { type: string; [field: string]: unknown }): SendResult;
  positions(): Record<string, Position>;
  forget(group?: string): void;
  presence(group: string): PresenceEntry[];
  setPresence(group: string, entries: PresenceEntry[]): void;
  reconnect(reason?: string): void;
  close(code?: number, reason?: string): void;
}
