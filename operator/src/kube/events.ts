/**
 * Kubernetes Events (core/v1, what `kubectl describe` shows) about the operator's objects.
 * Best effort: an Event that cannot be written is logged at debug and dropped; the same
 * reason and message for the same object is written at most once per `dedupeMs`.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { KubeClient } from './client.js';
import { EVENT_TYPE } from './resources.js';

export interface EventSubject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string | undefined; namespace?: string | undefined; uid?: string | undefined };
}

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  record(subject: EventSubject, type: EventType, reason: string, message: string): void;
}

const COMPONENT = 'rtccdn-operator';

export class EventRecorder implements EventSink {
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #instance: string;
  readonly #dedupeMs: number;
  readonly #recent = new Map<string, number>();

  constructor(client: KubeClient, logger: Logger, options: { instance: string; dedupeMs?: number }) {
    this.#client = client;
    this.#logger = logger;
    this.#instance = options.instance;
    this.#dedupeMs = options.dedupeMs ?? 10 * 60_000;
  }

  record(subject: EventSubject, type: EventType, reason: string, message: string): void {
    const { name, namespace, uid } = subject.metadata;
    if (!name || !namespace) return;
    const now = Date.now();
    const key = `${uid}\n${reason}\n${message}`;
    const last = this.#recent.get(key);
    if (last !== undefined && now - last < this.#dedupeMs) return;
    this.#recent.set(key, now);
    if (this.#recent.size > 10_000) this.#forgetOld(now);
    const time = new Date(now).toISOString();
    this.#client
      .create(EVENT_TYPE, {
        metadata: { name: `${name}.${now.toString(16)}${randomBytes(3).toString('hex')}`, namespace },
        involvedObject: { apiVersion: subject.apiVersion, kind: subject.kind, name, namespace, uid },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: COMPONENT },
        reportingComponent: `rtccdn.io/${COMPONENT}`,
        reportingInstance: this.#instance,
        firstTimestamp: time,
        lastTimestamp: time,
        count: 1,
      } as { metadata: { name: string; namespace: string } })
      .catch((error: unknown) => {
        this.#logger.debug(
          { err: error, reason, object: `${namespace}/${name}` },
          'could not record an event',
        );
      });
  }

  #forgetOld(now: number): void {
    for (const [key, at] of this.#recent) if (now - at >= this.#dedupeMs) this.#recent.delete(key);
  }
}
