import { z } from 'zod';
import {
  ClusterEventSchema,
  LAYOUT_VERSION,
  type StreamDownMessage,
  type StreamRecord,
  type StreamUpMessage,
} from '../../contract/redis.js';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { Announcement } from './Lease.js';

export type ClusterEventsEvents = {
  /** A stream-up message, from any node including this one. */
  streamup: [message: StreamUpMessage];
  /** A stream-down message, from any node including this one. */
  streamdown: [message: StreamDownMessage];
};

/**
 * The cluster's pub/sub channel ({prefix}events): the announcements this node publishes with its
 * claims (atomically, from the lease scripts), and the messages it receives, decoded — an invalid
 * one is logged and dropped, never passed on.
 */
export class ClusterEvents extends TypedEmitter<ClusterEventsEvents> {
  readonly channel: string;
  readonly #logger: Logger;

  constructor(channel: string, logger: Logger) {
    super();
    this.channel = channel;
    this.#logger = logger;
  }

  up(record: StreamRecord): Announcement {
    const message: StreamUpMessage = {
      v: LAYOUT_VERSION,
      type: 'stream-up',
      stream: record.name,
      nodeId: record.nodeId,
      claimId: record.claimId,
      ...(record.replaces ? { replaces: record.replaces } : {}),
    };
    return { channel: this.channel, message: JSON.stringify(message) };
  }

  down(record: StreamRecord, reason: string): Announcement {
    const message: StreamDownMessage = {
      v: LAYOUT_VERSION,
      type: 'stream-down',
      stream: record.name,
      nodeId: record.nodeId,
      claimId: record.claimId,
      reason: reason.slice(0, 200) || 'unspecified',
    };
    return { channel: this.channel, message: JSON.stringify(message) };
  }

  /** A message received on the channel. */
  receive(channel: string, message: string): void {
    if (channel !== this.channel) return;
    let data: unknown;
    try {
      data = JSON.parse(message);
    } catch {
      this.#logger.warn(
        { channel, message: message.slice(0, 200) },
        'dropped a cluster event that is not JSON',
      );
      return;
    }
    const result = ClusterEventSchema.safeParse(data);
    if (!result.success) {
      this.#logger.warn(
        { channel, message: message.slice(0, 200), problem: z.prettifyError(result.error) },
        'dropped an invalid cluster event',
      );
      return;
    }
    const event = result.data;
    if (event.type === 'stream-up') this.emit('streamup', event);
    else this.emit('streamdown', event);
  }
}
