/** The `StreamACL` kind: access keys for the streams of a CDN whose name matches a pattern. */
import { z } from 'zod';
import { MIN_ACCESS_KEY_LENGTH } from '../../../../media-node/contract/acl.js';
import { dnsLabel } from '../../kube/names.js';
import type { ResourceNames } from '../definition.js';
import { exactlyOneOf, keyedList, withRules } from '../rules.js';
import {
  conditions,
  count,
  customResourceSchema,
  LocalObjectReferenceSchema,
  observedGeneration,
  SecretKeySelectorSchema,
} from './fields.js';
import { CATEGORY } from './group.js';

export const STREAM_ACL_NAMES = {
  kind: 'StreamACL',
  listKind: 'StreamACLList',
  plural: 'streamacls',
  singular: 'streamacl',
  shortNames: ['sacl'],
  categories: [CATEGORY],
} as const satisfies ResourceNames;

export { MIN_ACCESS_KEY_LENGTH };

/**
 * Published stream names, as the media node's ACLs accept them (the contract's acl/model.ts):
 * no `~` — a rendition is governed by its source's ACL.
 */
const STREAM_NAME_CHARS = 'A-Za-z0-9._-';
/** An exact stream name, or a prefix followed by `*` (`*` alone matches every stream). */
export const STREAM_SELECTOR = new RegExp(
  `^([${STREAM_NAME_CHARS}]{1,128}|[${STREAM_NAME_CHARS}]{0,127}\\*)$`,
);

export const StreamKeySchema = withRules(
  z.object({
    id: dnsLabel().describe('Identifier of the key, unique in the list (e.g. obs-studio, partner-a).'),
    value: z
      .string()
      .min(MIN_ACCESS_KEY_LENGTH)
      .max(4096)
      .optional()
      .describe(
        'The key itself, at least 16 characters. Readable by anyone who can read this object: prefer secretKeyRef.',
      ),
    secretKeyRef: SecretKeySelectorSchema.optional().describe(
      'Secret key holding the key. The Secret (in the StreamACL namespace) must be labelled rtccdn.io/access-keys=true: the operator reads keys from no other Secret.',
    ),
    expiresAt: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('When the key stops being accepted (RFC 3339). Never when omitted.'),
  }),
  [exactlyOneOf('value', 'secretKeyRef')],
);

export const StreamACLSpecSchema = z
  .object({
    cdnRef: LocalObjectReferenceSchema.describe('The CDN whose streams this ACL guards.'),
    stream: z
      .string()
      .regex(
        STREAM_SELECTOR,
        'must be a stream name (1-128 of A-Z a-z 0-9 . _ ~ -) or a prefix followed by * (e.g. sales-*)',
      )
      .describe(
        'Streams guarded: an exact stream name (1-128 characters of A-Z a-z 0-9 . _ ~ -) or a prefix followed by * (e.g. sales-*; * alone selects every stream).',
      ),
    keys: keyedList(StreamKeySchema, 'id', 'key ids must be unique', { min: 1, max: 64 }).describe(
      'Keys that grant access to the selected streams; each has exactly one of value or secretKeyRef.',
    ),
  })
  .describe('Desired state of the stream access list.');

export const StreamACLStatusSchema = z
  .object({
    observedGeneration: observedGeneration().optional(),
    conditions: conditions('stream access list (e.g. Synced)').optional(),
    syncedKeys: count().optional().describe('Keys synchronised to the media nodes.'),
    lastSyncTime: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('When the keys were last synchronised to the media nodes.'),
  })
  .describe('Observed state of the stream access list, written by the operator.');

export const StreamACLSchema = customResourceSchema(
  STREAM_ACL_NAMES.kind,
  StreamACLSpecSchema,
  StreamACLStatusSchema,
);

export type StreamACL = z.output<typeof StreamACLSchema>;
export type StreamACLInput = z.input<typeof StreamACLSchema>;
export type StreamACLSpec = z.output<typeof StreamACLSpecSchema>;
export type StreamACLSpecInput = z.input<typeof StreamACLSpecSchema>;
export type StreamACLStatus = z.output<typeof StreamACLStatusSchema>;
export type StreamKey = z.output<typeof StreamKeySchema>;
