import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ageOf, nowCode, readCode, writeCode } from './framecode.js';
import { wrtc } from './wrtc.js';

export interface HttpResult {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Waits for non-trickle ICE: the offer then carries every host candidate. `renumber` maps payload
 * types (e.g. {96: 120, 120: 96}) to make libwebrtc offer another browser's numbering.
 */
async function gatheredOffer(
  pc: InstanceType<typeof wrtc.RTCPeerConnection>,
  renumber: Record<number, number> = {},
): Promise<string> {
  const offer = await pc.createOffer();
  await pc.setLocalDescription({ type: 'offer', sdp: renumberPayloadTypes(offer.sdp as string, renumber) });
  await gathered(pc);
  return pc.localDescription.sdp as string;
}

async function gathered(pc: InstanceType<typeof wrtc.RTCPeerConnection>): Promise<void> {
  if (pc.iceGatheringState !== 'complete') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  }
}

/** Rewrites payload type numbers in m= lines, rtpmap/fmtp/rtcp-fb lines and RTX apt= values. */
export function renumberPayloadTypes(sdp: string, map: Record<number, number>): string {
  if (Object.keys(map).length === 0) return sdp;
  const pt = (value: string) => String(map[Number(value)] ?? value);
  return sdp
    .split('\r\n')
    .map((line) => {
      const media = /^(m=\S+ \S+ \S+ )(.*)$/.exec(line);
      if (media) return media[1] + media[2]!.split(' ').map(pt).join(' ');
      const attribute = /^(a=(?:rtpmap|fmtp|rtcp-fb):)(\d+)(.*)$/.exec(line);
      if (attribute)
        return (
          attribute[1] + pt(attribute[2]!) + attribute[3]!.replace(/apt=(\d+)/, (_m, apt) => `apt=${pt(apt)}`)
        );
      return line;
    })
    .join('\r\n');
}

/**
 * POSTs an SDP offer on a connection of its own (no keep-alive), as a separate client would: a
 * load-balanced Service (kube-proxy picks a backend per connection) then spreads the peers.
 */
export function postSdp(
  url: string,
  sdp: string,
  headers: Record<string, string> = {},
  /** Certificate(s) to trust for an https: URL (a test's self-signed one). */
  ca?: string,
): Promise<HttpResult> {
  const target = new URL(url);
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(
      target,
      {
        method: 'POST',
        agent: false,
        timeout: 30_000,
        ...(ca ? { ca } : {}),
        headers: { 'Content-Type': 'application/sdp', 'Content-Length': Buffer.byteLength(sdp), ...headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const received = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            for (const each of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
              received.append(name, each);
            }
          }
          resolve({
            status: response.statusCode ?? 0,
            headers: received,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error(`POST ${url} timed out`)));
    outgoing.on('error', reject);
    outgoing.end(sdp);
  });
}

export interface PublisherOptions {
  width?: number;
  height?: number;
  fps?: number;
  audio?: boolean;
  token?: string;
  /** Restrict the offered video codecs, e.g. ['video/H264']. */
  videoCodecs?: string[];
}

/**
 * A WHIP publisher on libwebrtc: pushes synthetic I420 frames, each carrying its capture
 * time as a block code (see framecode.ts), plus optional Opus silence-free audio tone.
 */
export class TestPublisher {
  readonly pc = new wrtc.RTCPeerConnection();
  readonly source = new wrtc.nonstandard.RTCVideoSource();
  readonly track = this.source.createTrack();
  audioSource: InstanceType<typeof wrtc.nonstandard.RTCAudioSource> | undefined;
  audioTrack: { stop(): void } | undefined;
  location: string | undefined;
  framesSent = 0;
  #timer: NodeJS.Timeout | undefined;
  #audioTimer: NodeJS.Timeout | undefined;
  readonly width: number;
  readonly height: number;
  readonly fps: number;

  constructor(readonly options: PublisherOptions = {}) {
    this.width = options.width ?? 320;
    this.height = options.height ?? 240;
    this.fps = options.fps ?? 30;
  }

  async publish(baseUrl: string, stream: string): Promise<HttpResult> {
    const sdp = await this.createOffer();
    const headers: Record<string, string> = this.options.token
      ? { Authorization: `Bearer ${this.options.token}` }
      : {};
    const result = await postSdp(`${baseUrl}/whip/${stream}`, sdp, headers);
    if (result.status === 201) {
      this.location = result.headers.get('location') ?? undefined;
      await this.pc.setRemoteDescription({ type: 'answer', sdp: result.body });
    }
    return result;
  }

  /** Adds the tracks, starts the frame pump and returns a fully gathered offer. */
  async createOffer(): Promise<string> {
    const transceiver = this.pc.addTransceiver(this.track, { direction: 'sendonly' });
    if (this.options.videoCodecs) {
      const wanted = this.options.videoCodecs.map((codec) => codec.toLowerCase());
      const capabilities = wrtc.RTCRtpSender.getCapabilities?.('video');
      if (capabilities && transceiver.setCodecPreferences) {
        transceiver.setCodecPreferences(
          capabilities.codecs.filter((codec: { mimeType: string }) =>
            [...wanted, 'video/rtx'].includes(codec.mimeType.toLowerCase()),
          ),
        );
      }
    }
    if (this.options.audio) {
      this.audioSource = new wrtc.nonstandard.RTCAudioSource();
      this.audioTrack = this.audioSource.createTrack();
      this.pc.addTransceiver(this.audioTrack, { direction: 'sendonly' });
    }
    this.#startFrames();
    return gatheredOffer(this.pc);
  }

  async applyAnswer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  /** Stops feeding video frames (the encoder then sends nothing): a publisher gone quiet. */
  pauseFrames(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  resumeFrames(): void {
    if (!this.#timer) this.#pumpFrames();
  }

  #pumpFrames(): void {
    const { width, height } = this;
    const data = new Uint8ClampedArray(width * height * 1.5);
    data.fill(128, width * height); // neutral chroma
    this.#timer = setInterval(() => {
      writeCode(data, width, height, nowCode());
      this.source.onFrame({ width, height, data });
      this.framesSent++;
    }, 1000 / this.fps);
  }

  #startFrames(): void {
    this.#pumpFrames();
    if (this.audioSource) {
      // 10 ms of a 440 Hz tone per tick, 48 kHz mono.
      const samples = new Int16Array(480);
      let phase = 0;
      this.#audioTimer = setInterval(() => {
        for (let i = 0; i < samples.length; i++) {
          samples[i] = Math.round(Math.sin(phase) * 8000);
          phase += (2 * Math.PI * 440) / 48000;
        }
        this.audioSource.onData({
          samples,
          sampleRate: 48000,
          bitsPerSample: 16,
          channelCount: 1,
          numberOfFrames: 480,
        });
      }, 10);
    }
  }

  async unpublish(baseUrl: string): Promise<number> {
    if (!this.location) return 0;
    const response = await fetch(`${baseUrl}${this.location}`, {
      method: 'DELETE',
      headers: this.#authHeaders(),
    });
    return response.status;
  }

  #authHeaders(): Record<string, string> {
    return this.options.token ? { Authorization: `Bearer ${this.options.token}` } : {};
  }

  close(): void {
    clearInterval(this.#timer);
    clearInterval(this.#audioTimer);
    this.track.stop();
    this.pc.close();
  }
}

/** A WHEP viewer on libwebrtc that decodes video and reads the publisher's frame codes. */
export class TestViewer {
  readonly pc = new wrtc.RTCPeerConnection();
  location: string | undefined;
  framesDecoded = 0;
  /** Frames whose code was readable (proves the picture, not just the packets, arrived). */
  framesWithCode = 0;
  lastFrameSize: { width: number; height: number } | undefined;
  readonly latencies: number[] = [];
  /** Wall-clock time (ms) of every decoded frame: freezes are the gaps (failover benchmark). */
  readonly frameTimes: number[] = [];
  firstFrameAt: number | undefined;
  /**
   * When the last frame was decoded: once the server cuts the session, media stops at once while
   * the peer connection notices only later (ICE consent, seconds): this is when the cut landed.
   */
  lastFrameAt: number | undefined;
  #sink: InstanceType<typeof wrtc.nonstandard.RTCVideoSink> | undefined;
  readonly #frameWaiters: { count: number; resolve: () => void }[] = [];
  audioTracks = 0;

  async play(
    baseUrl: string,
    stream: string,
    options: {
      audio?: boolean;
      query?: string;
      renumber?: Record<number, number>;
      key?: string;
      /** Certificate to trust when baseUrl is https: (a test's self-signed one). */
      ca?: string;
    } = {},
  ): Promise<HttpResult> {
    this.pc.addTransceiver('video', { direction: 'recvonly' });
    if (options.audio !== false) this.pc.addTransceiver('audio', { direction: 'recvonly' });
    this.#attachSink();
    const sdp = await gatheredOffer(this.pc, options.renumber);
    const result = await postSdp(
      `${baseUrl}/whep/${stream}${options.query ?? ''}`,
      sdp,
      options.key ? { Authorization: `Bearer ${options.key}` } : {},
      options.ca,
    );
    if (result.status === 201) {
      this.location = result.headers.get('location') ?? undefined;
      await this.pc.setRemoteDescription({ type: 'answer', sdp: result.body });
    }
    return result;
  }

  /** Direct peer-to-peer (no server): answers a publisher's offer; used as the latency baseline. */
  async answerOffer(offer: string): Promise<string> {
    this.#attachSink();
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    await gathered(this.pc);
    return this.pc.localDescription.sdp as string;
  }

  #attachSink(): void {
    this.pc.ontrack = (event: { track: { kind: string } }) => {
      if (event.track.kind === 'audio') {
        this.audioTracks++;
        return;
      }
      this.#sink = new wrtc.nonstandard.RTCVideoSink(event.track);
      this.#sink.onframe = ({
        frame,
      }: {
        frame: { width: number; height: number; data: Uint8ClampedArray };
      }) => this.#onFrame(frame);
    };
  }

  #onFrame(frame: { width: number; height: number; data: Uint8ClampedArray }): void {
    this.framesDecoded++;
    this.frameTimes.push(Date.now());
    this.firstFrameAt ??= Date.now();
    this.lastFrameAt = Date.now();
    this.lastFrameSize = { width: frame.width, height: frame.height };
    const code = readCode(frame.data, frame.width, frame.height);
    if (code !== undefined) {
      this.framesWithCode++;
      this.latencies.push(ageOf(code));
    }
    for (const waiter of [...this.#frameWaiters]) {
      if (this.framesWithCode >= waiter.count) {
        this.#frameWaiters.splice(this.#frameWaiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }

  /** Resolves once `count` coded frames have been decoded; rejects after `timeoutMs`. */
  waitForFrames(count: number, timeoutMs = 15_000): Promise<void> {
    if (this.framesWithCode >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#frameWaiters.splice(this.#frameWaiters.indexOf(waiter), 1);
        reject(
          new Error(
            `only ${this.framesWithCode}/${count} coded frames (${this.framesDecoded} decoded) in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.#frameWaiters.push(waiter);
    });
  }

  /**
   * Resolves when the peer connection reports the server hung up (failed/closed/disconnected).
   * Polls: libwebrtc in Node does not always fire connectionstatechange for every transition.
   */
  async waitForDisconnect(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!['failed', 'closed', 'disconnected'].includes(this.pc.connectionState)) {
      if (Date.now() > deadline)
        throw new Error(`viewer still ${this.pc.connectionState} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return this.pc.connectionState;
  }

  async stop(baseUrl: string): Promise<number> {
    if (!this.location) return 0;
    const response = await fetch(`${baseUrl}${this.location}`, { method: 'DELETE' });
    return response.status;
  }

  close(): void {
    this.#sink?.stop();
    this.pc.close();
  }
}
