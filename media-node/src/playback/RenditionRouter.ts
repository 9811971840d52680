import { RtccdnError } from '../../contract/errors.js';
import { StreamNameSchema } from '../../contract/names.js';
import type { ClientQuotas } from '../limits/ClientQuotas.js';
import type { Stream } from '../media/Stream.js';
import { type Profile, renditionName } from '../transcode/profiles.js';
import type { Transcoder } from '../transcode/Transcoder.js';

/** Where renditions are made in a CDN: one of the region's transcoders, asked over the internal API. */
export interface RemoteRenditions {
  /** `beforeStart` runs (and may refuse by throwing) only when this call would start one. */
  resolveRendition(source: string, profile: string, beforeStart: () => void): Promise<Stream | undefined>;
}

export interface RenditionRouterOptions {
  profiles: readonly Profile[];
  /** This node's own transcoder (standalone and transcoder roles). */
  local: Transcoder | undefined;
  /** The CDN's transcoders (absent standalone). */
  remote: RemoteRenditions | undefined;
  quotas: ClientQuotas;
}

/**
 * Finds (or has made) the rendition of a stream a viewer asked for: here on a standalone node, by
 * a transcoder of the region in a CDN. Each start is an FFmpeg process somewhere, so the starts a
 * client causes are counted (joining a running rendition is not).
 */
export class RenditionRouter {
  readonly #options: RenditionRouterOptions;

  constructor(options: RenditionRouterOptions) {
    this.#options = options;
  }

  async resolve(source: string, profileName: string, clientIp: string): Promise<Stream | undefined> {
    const { profiles, local, remote, quotas } = this.#options;
    if (!profiles.some((profile) => profile.name === profileName)) {
      const valid = profiles.map((profile) => profile.name).join(', ') || '(none configured: set PROFILES)';
      throw new RtccdnError('UNKNOWN_PROFILE', `unknown profile "${profileName}"; valid profiles: ${valid}`);
    }
    const name = renditionName(source, profileName);
    if (!StreamNameSchema.safeParse(name).success) {
      throw new RtccdnError(
        'INVALID_REQUEST',
        `stream name too long for renditions: "${name}" exceeds 128 characters`,
      );
    }
    const existing = local?.find(name);
    if (existing) return existing;
    const countStart = () => quotas.recordRenditionStart(clientIp);
    if (local && !remote) {
      if (!local.starting(name)) countStart();
      return (await local.start(source, profileName)).stream;
    }
    return remote?.resolveRendition(source, profileName, countStart);
  }
}
