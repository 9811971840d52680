// A tiny WHIP/WHEP client (RFC 9725 / WHEP draft) for non-trickle servers: the offer is sent
// once ICE gathering completes, the answer carries every server candidate, no PATCH is needed.

/** An HTTP error from the server, with the `message` of its JSON error body when there is one. */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
  }
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
  return new HttpError(response.status, `HTTP ${response.status}: ${message}`);
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

  /** DELETE the session resource (best effort) and close the peer connection. */
  async stop() {
    const url = this.resourceUrl;
    this.resourceUrl = null;
    this.pc.close();
    if (!url) return;
    try {
      await fetch(url, { method: 'DELETE', headers: this.headers(), keepalive: true });
    } catch {
      // The server reclaims sessions whose transport dies anyway.
    }
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
