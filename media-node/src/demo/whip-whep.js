// A tiny WHIP/WHEP client (RFC 9725 / WHEP draft) for non-trickle servers: the offer is sent
// once ICE gathering completes, the answer carries every server candidate, no PATCH is needed.

/** An HTTP error from the server, with the `message` of its JSON error body when there is one. */
export class HttpError extends Error {
  constructor(status, message, retryAfterMs = null) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    /** From `Retry-After` (503 NODE_DRAINING, 429…): when the server asks to be tried again. */
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Whether a failed (re)start is worth trying again at the same URL: the server or the way to
 * it is busy or gone (a draining edge answers 503; a Service sends the next try elsewhere).
 */
export function retryable(error) {
  return !(error instanceof HttpError) || error.status === 429 || error.status >= 500;
}

/** Exponential backoff with full jitter: 0 the first time, then up to 250 ms × 2^n, ≤ 5 s. */
export function backoffMs(attempt, retryAfterMs = null) {
  if (attempt === 0 && retryAfterMs === null) return 0;
  const cap = Math.min(5000, 250 * 2 ** attempt);
  return Math.max(retryAfterMs ?? 0, Math.round(cap / 2 + (Math.random() * cap) / 2));
}

/** Resolves when ICE gathering completes, or after `capMs` (whatever was gathered is then sent). */
export function waitForIceGathering(pc, capMs = 2000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', onChange);
  });
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.message === 'string') message = body.message;
    } catch {
      if (text) message = text.slice(0, 200);
    }
  } catch {
    // Keep the status line.
  }
  const retryAfter = Number(response.headers.get('Retry-After'));
  return new HttpError(
    response.status,
    `HTTP ${response.status}: ${message}`,
    Number.isFinite(retryAfter) && response.headers.has('Retry-After') ? retryAfter * 1000 : null,
  );
}

/**
 * One WHIP or WHEP session. `endpoint` is the full URL (e.g. http://host/whip/demo); `pc` is a
 * prepared RTCPeerConnection (tracks or transceivers already added).
 */
export class WhipWhepSession {
  constructor(endpoint, pc, token) {
    this.endpoint = endpoint;
    this.pc = pc;
    this.token = token || '';
    this.resourceUrl = null;
  }

  headers(extra = {}) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
  }

  /** Offer → wait for ICE gathering → POST → apply the answer. Throws HttpError on failure. */
  async start() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await waitForIceGathering(this.pc);
    let response;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: this.headers({ 'Content-Type': 'application/sdp' }),
        body: this.pc.localDescription.sdp,
      });
    } catch (error) {
      throw new Error(`cannot reach ${this.endpoint}: ${error.message}`);
    }
    if (response.status !== 201) throw await errorFrom(response);
    const location = response.headers.get('Location');
    if (location) this.resourceUrl = new URL(location, this.endpoint).href;
    const answer = await response.text();
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answer });
  }

  /**
   * DELETE the session resource (best effort) and close the peer connection. Resolves to why the
   * session ended when the server had ended it already: its `410 SESSION_ENDED` reason (e.g.
   * `node-draining`), `gone` (404: the server forgot it, e.g. its stream ended), `unreachable`
   * (the node is gone), or null (it was live and this ended it).
   */
  async stop() {
    const url = this.resourceUrl;
    this.resourceUrl = null;
    this.pc.close();
    if (!url) return null;
    try {
      const response = await fetch(url, { method: 'DELETE', headers: this.headers(), keepalive: true });
      if (response.status === 410) {
        const body = await response.json().catch(() => null);
        return body?.data?.reason ?? 'ended';
      }
      if (response.status === 404) return 'gone';
      // A proxy or load balancer answering for a node that is gone.
      return response.status >= 500 ? 'unreachable' : null;
    } catch {
      // The server reclaims sessions whose transport dies anyway.
      return 'unreachable';
    }
  }

  /**
   * Calls `onEnd(why)` once when the server ends the session (DTLS close alert: browsers show it
   * on the DTLS transport at once) or the connection is lost (failed, or disconnected for longer
   * than `disconnectedMs`: a node that died sends no close alert).
   */
  onEnd(onEnd, disconnectedMs = 1500) {
    let ended = false;
    let timer = null;
    const end = (why) => {
      if (ended || this.pc.signalingState === 'closed') return;
      ended = true;
      clearTimeout(timer);
      onEnd(why);
    };
    const dtls = (this.pc.getReceivers()[0] ?? this.pc.getSenders()[0])?.transport;
    dtls?.addEventListener('statechange', () => {
      if (dtls.state === 'closed' || dtls.state === 'failed') end(`dtls-${dtls.state}`);
    });
    this.pc.addEventListener('connectionstatechange', () => {
      const state = this.pc.connectionState;
      clearTimeout(timer);
      if (state === 'failed' || state === 'closed') end(`connection-${state}`);
      else if (state === 'disconnected') timer = setTimeout(() => end('connection-lost'), disconnectedMs);
    });
  }
}

/** Publishes `stream` (a MediaStream) via WHIP. */
export async function whipPublish(endpoint, stream, token) {
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  }
  return startOrClose(new WhipWhepSession(endpoint, pc, token), pc);
}

/** Plays via WHEP; `onTrack(MediaStream)` receives the remote stream as tracks arrive. */
export async function whepPlay(endpoint, onTrack) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const remote = new MediaStream();
  pc.addEventListener('track', (event) => {
    remote.addTrack(event.track);
    onTrack(remote);
  });
  return startOrClose(new WhipWhepSession(endpoint, pc), pc);
}

/** Starts `session`; a session that cannot start leaves no peer connection behind. */
async function startOrClose(session, pc) {
  try {
    await session.start();
  } catch (error) {
    pc.close();
    throw error;
  }
  return session;
}
