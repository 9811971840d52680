/**
 * A media node for the HTTP layer's unit tests: its real configuration, metrics and stream
 * access (ACLs in memory, as on a standalone node), with the media side (publishing, playback,
 * sessions, workers, relays) faked — those tests are about routing, parsing and authentication,
 * not about WebRTC. Every call into the fake media side is recorded.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { StreamAccess } from '../../../media-node/src/acl/StreamAccess.js';
import { loadConfig, type MediaNodeConfig } from '../../../media-node/src/config.js';
import type { MediaNode } from '../../../media-node/src/MediaNode.js';
import { MediaNodeMetrics } from '../../../media-node/src/metrics.js';
import { Sessions } from '../../../media-node/src/sessions/Sessions.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface FakeMediaNode {
  node: MediaNode;
  config: MediaNodeConfig;
  access: StreamAccess;
  metrics: MediaNodeMetrics;
  /** What the node logged (JSON lines, at info and above). */
  logs: LogLine[];
  published: { stream: string; sdp: string; ip: string }[];
  played: {
    stream: string;
    sdp: string;
    key: string | undefined;
    clientIp: string;
    profile: string | undefined;
  }[];
  ended: { protocol: string; stream: string; session: string }[];
  /** What the next publish/play throws instead of answering. */
  failNext: { error?: Error };
  drained: boolean[];
  close(): Promise<void>;
}

export const SESSION_ID = '6f1c1e9e-2d0b-4a51-9f0e-4c4d2f3b1a10';

/** A node configured from `env` (as the process environment), with `config` fields overridden. */
export async function fakeMediaNode(
  env: Record<string, string> = {},
  options: {
    config?: Partial<MediaNodeConfig>;
    accepts?: boolean;
    sessionExists?: boolean;
    /** Why the server ended a session it no longer has (sessions.endedReason), by session id. */
    endedReasons?: Record<string, string>;
    relayServer?: unknown;
    transcoder?: unknown;
    /** An HlsPlayback stand-in (node.hls). */
    hls?: unknown;
    /** Live streams (name and tracks) and their viewer counts. */
    streams?: {
      name: string;
      producers: { kind: string; rtpParameters: { codecs: { mimeType: string }[] } }[];
    }[];
    viewers?: Record<string, number>;
    /** The node's CDN membership (only what a test needs of it, e.g. endRemoteSession). */
    cluster?: unknown;
  } = {},
): Promise<FakeMediaNode> {
  const config: MediaNodeConfig = {
    ...loadConfig({ LOG_LEVEL: 'silent', WORKERS: '1', ...env }),
    ...options.config,
  };
  const logs: LogLine[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logs.push(JSON.parse(line));
        done();
      },
    }),
  );
  const metrics = new MediaNodeMetrics();
  const access = new StreamAccess({ config: config.access, redis: undefined, metrics, logger });
  await access.start();
  const published: FakeMediaNode['published'] = [];
  const played: FakeMediaNode['played'] = [];
  const ended: FakeMediaNode['ended'] = [];
  const drained: boolean[] = [];
  const failNext: FakeMediaNode['failNext'] = {};
  let draining = false;
  const answer = (protocol: string, stream: string) => {
    const error = failNext.error;
    if (error) {
      failNext.error = undefined;
      throw error;
    }
    return {
      id: SESSION_ID,
      path: `/${protocol}/${stream}/${SESSION_ID}`,
      answer: `v=0 answer for ${stream}`,
    };
  };
  const node = {
    config,
    logger,
    metrics,
    access,
    ready: true,
    get draining() {
      return draining;
    },
    setDraining(value: boolean) {
      drained.push(value);
      draining = value;
    },
    pool: { workers: [{}] },
    streams: { values: () => options.streams ?? [] },
    sessions: {
      viewerCount: 7,
      values: () => [],
      viewersOf: (stream: string) => options.viewers?.[stream] ?? 0,
      end: (protocol: string, stream: string, session: string) => {
        ended.push({ protocol, stream, session });
        return options.sessionExists ?? true;
      },
      endedReason: (_protocol: string, _stream: string, session: string) => options.endedReasons?.[session],
      // The real answer (ended, SESSION_ENDED or SESSION_NOT_FOUND) over the fake end/endedReason.
      endOrExplain(protocol: 'whip' | 'whep', stream: string, session: string) {
        Sessions.prototype.endOrExplain.call(this as unknown as Sessions, protocol, stream, session);
      },
    },
    ingest: {
      accepts: options.accepts ?? true,
      publish: async (stream: string, sdp: string, ip: string) => {
        published.push({ stream, sdp, ip });
        return answer('whip', stream);
      },
    },
    playback: {
      accepts: true,
      play: async (request: FakeMediaNode['played'][number]) => {
        played.push(request);
        return answer('whep', request.stream);
      },
    },
    relayServer: options.relayServer,
    transcoder: options.transcoder,
    hls: options.hls,
    cluster: options.cluster,
    dump: async () => ({ node: 'dumped' }),
  } as unknown as MediaNode;
  return {
    node,
    config,
    access,
    metrics,
    logs,
    published,
    played,
    ended,
    failNext,
    drained,
    close: () => access.close(),
  };
}
