/**
 * The one error model of rtccdn's APIs. Code that refuses something throws an RtccdnError with a
 * stable `code` (what API users branch on) and the data that explains it; the code alone decides
 * the HTTP status, in one table, at the edge (http/errorHandler.ts) — the domain never speaks
 * HTTP. docs/errors.md lists the codes for API users.
 */
export const ERROR_CODES = {
  /** Malformed input: a stream name, a query parameter, a body field. */
  INVALID_REQUEST: 400,
  /** An SDP offer the node cannot use (the message says why). */
  INVALID_SDP: 400,
  /** `?profile=` names no configured rendition profile. */
  UNKNOWN_PROFILE: 400,
  /** A bearer token (PUBLISH_TOKEN, ADMIN_TOKEN) is missing or wrong. */
  UNAUTHENTICATED: 401,
  /** A node-to-node call without a valid signature for this node. */
  UNAUTHENTICATED_CALL: 401,
  /** The stream is protected: present an access key. */
  ACCESS_KEY_REQUIRED: 401,
  /** The access key is wrong, removed or expired (one answer for all three). */
  ACCESS_DENIED: 403,
  /** An HLS URL whose signature is missing, malformed or does not match its path (tampered). */
  HLS_URL_INVALID: 403,
  /** An HLS URL past its expiry: load the multivariant playlist again with the access key. */
  HLS_URL_EXPIRED: 403,
  /** This API is turned off on this node (e.g. the ACL API without ADMIN_TOKEN). */
  API_DISABLED: 403,
  STREAM_NOT_LIVE: 404,
  SESSION_NOT_FOUND: 404,
  ACL_NOT_FOUND: 404,
  KEY_NOT_FOUND: 404,
  CDN_NOT_FOUND: 404,
  RELAY_NOT_FOUND: 404,
  /** An HLS variant, segment or file that does not exist (any more: FFmpeg keeps a few). */
  HLS_SEGMENT_NOT_FOUND: 404,
  /** No route for this method and path. */
  ROUTE_NOT_FOUND: 404,
  /**
   * The server ended this session for a reason the player should act on by playing again at
   * the same URL (data.reason: `node-draining`, `node-shutdown`).
   */
  SESSION_ENDED: 410,
  /**
   * The edge that packages this HLS player's stream (named in its signed URLs) left the CDN or
   * does not answer: load the multivariant playlist again (it lands on a live edge).
   */
  HLS_NODE_GONE: 410,
  /** Trickle ICE and ICE restarts (PATCH) are not supported. */
  METHOD_NOT_ALLOWED: 405,
  /** The stream name is taken: published here, or claimed by another origin (data: holder). */
  STREAM_CLAIMED: 409,
  /** The key id exists already on this ACL. */
  KEY_ID_TAKEN: 409,
  /** The stored ACL cannot be read (invalid, newer version): replace or delete it. */
  ACL_UNREADABLE: 409,
  /** The ACL is managed elsewhere (kubectl), or the change would leave it without keys. */
  ACL_CONFLICT: 409,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** This node's role does not do that (publish to an origin, play from an edge; ACLs in k8s). */
  WRONG_NODE: 421,
  /** The offer has no codec the node supports, or none the stream sends. */
  NO_SUPPORTED_CODEC: 422,
  /** Too many failed attempts (keys, tokens) from this client or on this stream. */
  RATE_LIMITED: 429,
  /** A per-client quota: sessions connecting, rendition starts, open-ingest publishes. */
  QUOTA_EXCEEDED: 429,
  /** The call was made and failed on another node (relay, transcoder, sync). */
  UPSTREAM_FAILED: 502,
  /** The node is draining (scale-down, rollout): go to another edge. */
  NODE_DRAINING: 503,
  NODE_SHUTTING_DOWN: 503,
  /** A node-wide ceiling: streams, payload-type numberings, transcoder jobs. */
  NODE_LIMIT: 503,
  /** The CDN registry (Redis) cannot be reached. */
  REGISTRY_UNAVAILABLE: 503,
  /** The ACL store (Redis) cannot be reached for a change. */
  ACL_STORE_UNAVAILABLE: 503,
  /** The access rules of this stream cannot be known right now: nobody is admitted (fail closed). */
  ACCESS_RULES_UNAVAILABLE: 503,
  /** No transcoder can make the rendition now. */
  TRANSCODER_UNAVAILABLE: 503,
  /** A blocking LL-HLS request (playlist reload, hinted part) whose part did not come in time. */
  HLS_PART_NOT_READY: 503,
  /** A bug, logged with its stack where it was caught; the body says nothing more. */
  INTERNAL: 500,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Values that may travel in an error body: what a client can act on, never a secret. */
export type ErrorData = Record<string, string | number | boolean | string[]>;

export interface ErrorDetails {
  /** Machine-readable context (e.g. `holder` of a STREAM_CLAIMED). Shown in the body. */
  data?: ErrorData;
  /** When to try again: `Retry-After` (rounded up to seconds). */
  retryAfterMs?: number;
  /** A `WWW-Authenticate` challenge (401s). */
  challenge?: string;
  /** Other response headers the answer needs (e.g. `Accept-Post` with a 415). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** A refusal with a stable code, a message safe to show the client, and its context. */
export class RtccdnError extends Error {
  override name = 'RtccdnError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.details = details;
  }

  /** The HTTP status the code maps to. */
  get status(): number {
    return ERROR_CODES[this.code];
  }
}

export function isRtccdnError(error: unknown, code?: ErrorCode): error is RtccdnError {
  return error instanceof RtccdnError && (code === undefined || error.code === code);
}
