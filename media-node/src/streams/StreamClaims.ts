import type { MediaKind } from '../../contract/redis.js';

/**
 * Claims a stream name CDN-wide before this node serves it as a source (a publish, a rendition)
 * and lets it go after. In a CDN the cluster registry holds the claims (STREAM_CLAIMED naming the
 * holder when another node has the name); a standalone node has no one to share names with.
 */
export interface StreamClaims {
  claim(name: string, kinds: MediaKind[]): Promise<void>;
  release(name: string, reason: string): void;
}

/** A standalone node's claims: the names are this node's alone (LocalStreams keeps them unique). */
export const STANDALONE_CLAIMS: StreamClaims = {
  async claim() {},
  release() {},
};
