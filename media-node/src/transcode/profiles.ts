import { z } from 'zod';
import { RENDITION_SEPARATOR } from '../../contract/names.js';
import { MAX_PROFILES, type Profile, ProfileSchema } from '../../contract/profiles.js';

/**
 * Renditions: lower-resolution copies of a stream made on demand by transcoder nodes. A
 * rendition is just another live stream, named `{stream}~{profile}` (e.g. `match~360p`), that
 * edges relay like any other. The profile itself is part of the contract (PROFILES).
 */
export { type Profile, ProfileSchema };

export const ProfilesSchema = z
  .array(ProfileSchema)
  .max(MAX_PROFILES, `at most ${MAX_PROFILES} profiles`)
  .refine(
    (profiles) => new Set(profiles.map((profile) => profile.name)).size === profiles.length,
    'profile names must be unique',
  );

/** `PROFILES` (JSON) → profiles; throws with the first problem, path included. */
export function parseProfiles(json: string | undefined): Profile[] {
  if (json === undefined || json.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new Error('must be a JSON array of {name, width, height, fps, codec, bitrate}');
  }
  const parsed = ProfilesSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${issue.path.length > 0 ? `[${issue.path.join('.')}] ` : ''}${issue.message}`);
  }
  return parsed.data;
}

export function renditionName(stream: string, profile: string): string {
  return `${stream}${RENDITION_SEPARATOR}${profile}`;
}

/** The source stream and profile of a rendition name, when it is one of `profiles`. */
export function parseRenditionName(
  name: string,
  profiles: readonly Profile[],
): { source: string; profile: Profile } | undefined {
  const at = name.lastIndexOf(RENDITION_SEPARATOR);
  if (at <= 0) return undefined;
  const profile = profiles.find((candidate) => candidate.name === name.slice(at + 1));
  return profile ? { source: name.slice(0, at), profile } : undefined;
}
