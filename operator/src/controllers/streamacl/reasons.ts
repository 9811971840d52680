/** The condition of a StreamACL's status, and every reason the StreamACL controller reports. */
import { SharedReason } from '../reasons.js';

export const StreamAclCondition = {
  /** The edges enforce this spec (its keys are in the CDN's Redis). */
  Synced: 'Synced',
} as const;

export const StreamAclReason = {
  /** Synced=True. */
  Synced: 'Synced',
  /**
   * Synced=False: the StreamACL cannot be read (reported once, until it changes), or Redis
   * refuses what it asks (retried).
   */
  InvalidSpec: SharedReason.InvalidSpec,
  /** Synced=False: nothing can be written yet (retried every 5 s). */
  CDNNotFound: SharedReason.CDNNotFound,
  ClusterSecretMissing: SharedReason.ClusterSecretMissing,
  RedisSecretMissing: SharedReason.RedisSecretMissing,
  RedisSecretInvalid: SharedReason.RedisSecretInvalid,
  RedisUnavailable: 'RedisUnavailable',
  /** Synced=False: another StreamACL of the CDN (the oldest) guards the same streams. */
  PatternConflict: 'PatternConflict',
  /** Synced=False: written without the keys that could not be read (fail closed). */
  KeySecretNotLabelled: 'KeySecretNotLabelled',
  KeySecretMissing: 'KeySecretMissing',
  KeyTooShort: 'KeyTooShort',
  InvalidKey: 'InvalidKey',
  /** Not written to the status: the StreamACL is being deleted and its clean-up is retried. */
  Finalizing: 'Finalizing',
} as const;
