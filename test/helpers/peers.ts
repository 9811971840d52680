import { ageOf, nowCode, readCode, writeCode } from './framecode.js';
import { wrtc } from './wrtc.js';

export interface HttpResult {
  status: number;
  headers: Headers;
  body: string;
}

/** Waits for non-trickle ICE: the offer then carries every host candidate. */
async function gatheredOffer(pc: InstanceType<typeof wrtc.RTCPeerConnection>): Promise<string> {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
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
  return pc.localDescription.sdp as string;
}

export async function postSdp(url: string, sdp: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...headers },
    body: sdp,
  });
  return { status: response.status, headers: response.headers, body: await response.text() };
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
      this.pc.addTransceiver(this.audioSource.createTrack(), { direction: 'sendonly' });
    }
    this.#startFrames();
    const sdp = await gatheredOffer(this.pc);
    const headers: Record<string, string> = this.options.token ? { Authorization: `Bearer ${this.options.token}` } : {};
    const result = await postSdp(`${baseUrl}/whip/${stream}`, sdp, headers);
    if (result.status === 201) {
      this.location = result.headers.get('location') ?? undefined;
      await this.pc.setRemoteDescription({ type: 'answer', sdp: result.body });
    }
    return result;
  }

  #startFrames(): void {
    const { width, height } = this;
    const data = new Uint8ClampedArray(width * height * 1.5);
    data.fill(128, width * height); // neutral chroma
    this.#timer = setInterval(() => {
      writeCode(data, width, height, nowCode());
      this.source.onFrame({ width, height, data });
      this.framesSent++;
    }, 1000 / this.fps);
    if (this.audioSource) {
      // 10 ms of a 440 Hz tone per tick, 48 kHz mono.
      const samples = new Int16Array(480);
      let phase = 0;
      this.#audioTimer = setInterval(() => {
        for (let i = 0; i < samples.length; i++) {
          samples[i] = Math.round(Math.sin(phase) * 8000);
          phase += (2 * Math.PI * 440) / 48000;
        }
        this.audioSource.onData({ samples, sampleRate: 48000, bitsPerSample: 16, channelCount: 1, numberOfFrames: 480 });
      }, 10);
    }
  }

  async unpublish(baseUrl: string): Promise<number> {
    if (!this.location) return 0;
    const response = await fetch(`${baseUrl}${this.location}`, { method: 'DELETE', headers: this.#authHeaders() });
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
  firstFrameAt: number | undefined;
  #sink: InstanceType<typeof wrtc.nonstandard.RTCVideoSink> | undefined;
  readonly #frameWaiters: { count: number; resolve: () => void }[] = [];
  audioTracks = 0;

  async play(baseUrl: string, stream: string, options: { audio?: boolean; query?: string } = {}): Promise<HttpResult> {
    this.pc.addTransceiver('video', { direction: 'recvonly' });
    if (options.audio !== false) this.pc.addTransceiver('audio', { direction: 'recvonly' });
    this.pc.ontrack = (event: { track: { kind: string } }) => {
      if (event.track.kind === 'audio') {
        this.audioTracks++;
        return;
      }
      this.#sink = new wrtc.nonstandard.RTCVideoSink(event.track);
      this.#sink.onframe = ({ frame }: { frame: { width: number; height: number; data: Uint8ClampedArray } }) =>
        this.#onFrame(frame);
    };
    const sdp = await gatheredOffer(this.pc);
    const result = await postSdp(`${baseUrl}/whep/${stream}${options.query ?? ''}`, sdp);
    if (result.status === 201) {
      this.location = result.headers.get('location') ?? undefined;
      await this.pc.setRemoteDescription({ type: 'answer', sdp: result.body });
    }
    return result;
  }

  #onFrame(frame: { width: number; height: number; data: Uint8ClampedArray }): void {
    this.framesDecoded++;
    this.firstFrameAt ??= Date.now();
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
      const waiter = { count, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.#frameWaiters.splice(this.#frameWaiters.indexOf(waiter), 1);
        reject(new Error(`only ${this.framesWithCode}/${count} coded frames (${this.framesDecoded} decoded) in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#frameWaiters.push(waiter);
    });
  }

  /** Resolves when the peer connection reports the server hung up (failed/closed/disconnected). */
  waitForDisconnect(timeoutMs = 10_000): Promise<string> {
    const ended = () => ['failed', 'closed', 'disconnected'].includes(this.pc.connectionState);
    if (ended()) return Promise.resolve(this.pc.connectionState);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`viewer still ${this.pc.connectionState} after ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.pc.onconnectionstatechange = () => {
        if (ended()) {
          clearTimeout(timer);
          resolve(this.pc.connectionState);
        }
      };
    });
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
