import { z } from 'zod';

/**
 * The `Status` object the API server returns with every failure (and in watch ERROR events).
 * Only the fields the operator acts on; the rest is kept for logs.
 */
export const StatusSchema = z.looseObject({
  kind: z.literal('Status').optional(),
  status: z.string().optional(),
  message: z.string().optional(),
  /** Machine-readable: NotFound, AlreadyExists, Conflict, Invalid, Expired, Gone, Forbidden, … */
  reason: z.string().optional(),
  code: z.number().optional(),
  details: z
    .looseObject({
      name: z.string().optional(),
      kind: z.string().optional(),
      causes: z
        .array(z.looseObject({ field: z.string().optional(), message: z.string().optional() }))
        .optional(),
    })
    .optional(),
});
export type Status = z.output<typeof StatusSchema>;

/**
 * A request the API server refused (or that never got an answer: `status` 0). Carries what was
 * attempted (`operation`, e.g. `PATCH apps/v1 statefulsets default/live-eu-edge`) and the
 * server's reason, so that one log line says everything.
 */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly operation: string,
    /** HTTP status; 0 when the request failed before a response (network, timeout). */
    readonly status: number,
    /** Status.reason from the body, or a generic one derived from the HTTP status. */
    readonly reason: string,
    readonly serverMessage: string,
    options?: { cause?: unknown },
  ) {
    super(`${operation}: ${status === 0 ? '' : `${status} ${reason}: `}${serverMessage}`, options);
  }

  /** Parses an error response body (a Status, or anything else the server or a proxy sent). */
  static fromResponse(operation: string, status: number, body: string): KubeApiError {
    let parsed: Status | undefined;
    try {
      const result = StatusSchema.safeParse(JSON.parse(body));
      if (result.success) parsed = result.data;
    } catch {
      // not JSON (a proxy's HTML page, an empty body): fall back to the HTTP status
    }
    const reason = parsed?.reason || reasonForHttpStatus(status);
    const message = parsed?.message || body.trim().slice(0, 300) || `HTTP ${status}`;
    return new KubeApiError(operation, status, reason, message);
  }
}

/** The reason the API server uses for an HTTP status when the body does not say. */
function reasonForHttpStatus(status: number): string {
  switch (status) {
    case 400:
      return 'BadRequest';
    case 401:
      return 'Unauthorized';
    case 403:
      return 'Forbidden';
    case 404:
      return 'NotFound';
    case 405:
      return 'MethodNotAllowed';
    case 409:
      return 'Conflict';
    case 410:
      return 'Gone';
    case 415:
      return 'UnsupportedMediaType';
    case 422:
      return 'Invalid';
    case 429:
      return 'TooManyRequests';
    case 500:
      return 'InternalError';
    case 503:
      return 'ServiceUnavailable';
    case 504:
      return 'Timeout';
    default:
      return status === 0 ? 'NetworkError' : 'Unknown';
  }
}

const isApiError = (error: unknown): error is KubeApiError => error instanceof KubeApiError;

export const isNotFound = (error: unknown): boolean =>
  isApiError(error) && (error.status === 404 || error.reason === 'NotFound');
export const isAlreadyExists = (error: unknown): boolean =>
  isApiError(error) && error.reason === 'AlreadyExists';
/** A resourceVersion precondition failed (409 Conflict), not an AlreadyExists. */
export const isConflict = (error: unknown): boolean => isApiError(error) && error.reason === 'Conflict';
/** The resourceVersion asked for is too old (410 Gone / Expired): list again. */
export const isGone = (error: unknown): boolean =>
  isApiError(error) && (error.status === 410 || error.reason === 'Gone' || error.reason === 'Expired');

/** One line for logs and status messages, whatever was thrown. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
