import type { Redis, RedisOptions } from 'ioredis';
import { createRedis, failFastRedisOptions, type RedisScript } from '../../contract/redis.js';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import { ClusterRegistryError, describeRedisError, isTimeout, redactedAddress } from './errors.js';

export type RegistryConnectionEvents = {
  /** Both connections are up and the subscription is active: time to register everything again. */
  connected: [];
  /** Connected, subscribed, and the last heartbeat succeeded (again). */
  ready: [];
  /** Lost Redis (or a heartbeat failed) while ready, or could not reach it at start. */
  unavailable: [error: ClusterRegistryError];
  message: [channel: string, message: string];
};

type Availability = 'starting' | 'ready' | 'unavailable';

export interface RegistryConnectionOptions {
  redisUrl: string;
  /** The one channel to subscribe to. */
  channel: string;
  /** Scripts cached on the server as soon as the command connection is up. */
  scripts: readonly RedisScript[];
  commandTimeoutMs: number;
  /** Names the connections in CLIENT LIST (the node id). */
  clientName: string;
  logger: Logger;
}

/**
 * The registry's two Redis connections — commands, and a subscriber (a connection in subscriber
 * mode can run no other command) — and whether the registry is usable: connected, subscribed,
 * and its last heartbeat succeeded. One log line and one event per change of state, not per
 * failed retry: a Redis outage of a minute is two lines, whatever the number of reconnections.
 */
export class RegistryConnection extends TypedEmitter<RegistryConnectionEvents> {
  readonly redis: Redis;
  readonly #subscriber: Redis;
  readonly #options: RegistryConnectionOptions;
  readonly #logger: Logger;
  readonly #address: string;
  #connected = false;
  #subscribed = false;
  #heartbeatSucceeded = false;
  #availability: Availability = 'starting';
  #unavailableSince = 0;
  #lastConnectionError: Error | undefined;
  #closed = false;

  constructor(options: RegistryConnectionOptions) {
    super();
    this.#options = options;
    this.#logger = options.logger;
    this.#address = redactedAddress(options.redisUrl);
    const connectionOptions: RedisOptions = {
      ...failFastRedisOptions(options.commandTimeoutMs),
      // Re-subscribed by hand on 'ready', so that readiness means "the subscription is active".
      autoResubscribe: false,
    };
    this.redis = createRedis(options.redisUrl, {
      ...connectionOptions,
      connectionName: `rtccdn-registry-${options.clientName}`,
    });
    this.#subscriber = createRedis(options.redisUrl, {
      ...connectionOptions,
      connectionName: `rtccdn-events-${options.clientName}`,
    });
    this.#watchCommandConnection();
    this.#watchSubscriber();
  }

  get ready(): boolean {
    return this.#availability === 'ready' && !this.#closed;
  }

  get address(): string {
    return this.#address;
  }

  /** Runs `run` on the command connection; its failure is a ClusterRegistryError naming the work. */
  async command<T>(operation: string, key: string, run: (redis: Redis) => Promise<T>): Promise<T> {
    try {
      return await run(this.redis);
    } catch (error) {
      throw new ClusterRegistryError(operation, key, error);
    }
  }

  /** What the last heartbeat said: part of readiness. A timed-out one also drops the connection. */
  heartbeatResult(failure: ClusterRegistryError | undefined): void {
    if (this.#closed) return;
    if (failure) {
      this.#heartbeatSucceeded = false;
      this.#updateAvailability(failure);
      if (isTimeout(failure.cause)) {
        // A connection that stopped answering (half-open TCP, hung server) is never closed by
        // the OS in useful time: drop it and reconnect, which also fails pending calls at once.
        this.redis.disconnect(true);
      }
      return;
    }
    this.#heartbeatSucceeded = true;
    this.#updateAvailability();
  }

  /**
   * The subscriber only receives, so a dead link (half-open TCP, hung server) would go unnoticed:
   * probe it (with each heartbeat). Its own 'close' then makes the registry unavailable.
   */
  probeSubscriber(): void {
    if (!this.#subscribed) return;
    this.#subscriber.ping().catch((error: unknown) => {
      if (!isTimeout(error) || this.#closed) return;
      this.#logger.debug('subscriber did not answer a ping; reconnecting it');
      this.#subscriber.disconnect(true);
    });
  }

  /** From now on: no state changes, no events (the registry is closing); commands still run. */
  beginClose(): void {
    this.#closed = true;
  }

  /** Quits both connections (politely, if Redis answers). */
  async quit(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([this.redis.quit(), this.#subscriber.quit()]);
  }

  /** Ends both connections whatever their state, and stops reconnecting. */
  disconnect(): void {
    this.#closed = true;
    this.redis.disconnect();
    this.#subscriber.disconnect();
  }

  #watchCommandConnection(): void {
    this.redis.on('ready', () => {
      this.#connected = true;
      this.#lastConnectionError = undefined;
      // Cached before anything else is sent on this connection, so no later script is re-sent in
      // full out of order (a NOSCRIPT retry would reach Redis after commands sent after it).
      for (const script of this.#options.scripts) script.load(this.redis).catch(() => undefined);
      this.emit('connected');
    });
    this.redis.on('error', (error: Error) => {
      this.#lastConnectionError = error;
      this.#logger.debug({ err: error }, 'redis connection error');
    });
    this.redis.on('close', () => {
      this.#connected = false;
      this.#heartbeatSucceeded = false;
      this.#updateAvailability(this.#connectionLost());
    });
  }

  #watchSubscriber(): void {
    const subscriber = this.#subscriber;
    subscriber.on('ready', () => {
      subscriber.subscribe(this.#options.channel).then(
        () => {
          this.#subscribed = true;
          this.#updateAvailability();
        },
        (error: unknown) => {
          this.#updateAvailability(new ClusterRegistryError('subscribe', this.#options.channel, error));
          // Nothing else would subscribe again before the next reconnection (e.g. a SUBSCRIBE that
          // timed out while this process was busy starting): make one.
          if (!this.#closed) subscriber.disconnect(true);
        },
      );
    });
    subscriber.on('error', (error: Error) => {
      this.#lastConnectionError = error;
      this.#logger.debug({ err: error }, 'redis subscriber connection error');
    });
    subscriber.on('close', () => {
      if (!this.#subscribed) return;
      this.#subscribed = false;
      this.#updateAvailability(this.#connectionLost());
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (!this.#closed) this.emit('message', channel, message);
    });
  }

  #updateAvailability(cause?: ClusterRegistryError): void {
    if (this.#closed) return;
    const healthy = this.#connected && this.#subscribed && this.#heartbeatSucceeded;
    if (healthy && this.#availability !== 'ready') {
      const outageMs = this.#availability === 'unavailable' ? Date.now() - this.#unavailableSince : undefined;
      this.#availability = 'ready';
      this.#logger.info(
        { redis: this.#address, outageMs },
        outageMs === undefined ? 'cluster registry ready' : 'cluster registry ready again',
      );
      this.emit('ready');
    } else if (!healthy && cause && this.#availability !== 'unavailable') {
      this.#availability = 'unavailable';
      this.#unavailableSince = Date.now();
      this.#logger.warn(
        { err: cause, redis: this.#address },
        'cluster registry unavailable; retrying in the background',
      );
      this.emit('unavailable', cause);
    }
  }

  #connectionLost(): ClusterRegistryError {
    return new ClusterRegistryError(
      'connection to',
      this.#address,
      this.#lastConnectionError ?? 'connection closed',
    );
  }
}

export { describeRedisError };
