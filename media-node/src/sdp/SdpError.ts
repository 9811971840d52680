/** A WHIP/WHEP offer the node cannot use; `status` is the HTTP status to answer with. */
export class SdpError extends Error {
  override name = 'SdpError';
  constructor(
    message: string,
    readonly status: 400 | 415 | 422,
  ) {
    super(message);
  }
}
