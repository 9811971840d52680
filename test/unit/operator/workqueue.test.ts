/**
 * The controllers' work queue: dedup, one worker per key at a time, delayed adds, per-key
 * exponential backoff, shutdown.
 */
import { describe, expect, it } from '@jest/globals';
import { WorkQueue } from '../../../operator/src/runtime/WorkQueue.js';

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('WorkQueue', () => {
  it('queues a key once however often it is added, in order of first add', async () => {
    const depths: number[] = [];
    const queue = new WorkQueue({ onDepthChange: (depth) => depths.push(depth) });
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(queue.length).toBe(2);
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
    expect(depths.at(-1)).toBe(0);
  });

  it('never hands a key to two workers: re-added while processing, it comes back after done()', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const key = await queue.get();
    queue.add('a'); // an event arrives while the reconcile runs
    expect(queue.length).toBe(0);
    let second: string | undefined;
    const waiting = queue.get().then((next) => {
      second = next;
    });
    await tick();
    expect(second).toBeUndefined();
    queue.done(key!);
    await waiting;
    expect(second).toBe('a');
  });

  it('delays adds, keeping the earliest of several', async () => {
    const queue = new WorkQueue();
    queue.addAfter('a', 200);
    queue.addAfter('a', 30);
    queue.addAfter('a', 500);
    expect(queue.length).toBe(0);
    await tick(80);
    expect(queue.length).toBe(1);
    await queue.get();
    queue.done('a');
    await tick(250);
    expect(queue.length).toBe(0); // the later timers were dropped
  });

  it('backs off exponentially per key until forget()', () => {
    const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    expect([1, 2, 3, 4, 5].map(() => queue.addRateLimited('a'))).toEqual([10, 20, 40, 50, 50]);
    expect(queue.addRateLimited('b')).toBe(10);
    expect(queue.failures('a')).toBe(5);
    queue.forget('a');
    expect(queue.addRateLimited('a')).toBe(10);
    queue.shutDown();
  });

  it('wakes waiting workers with undefined on shutdown and ignores later adds', async () => {
    const queue = new WorkQueue();
    const waiting = [queue.get(), queue.get()];
    queue.addAfter('late', 10);
    queue.shutDown();
    expect(await Promise.all(waiting)).toEqual([undefined, undefined]);
    queue.add('a');
    expect(await queue.get()).toBeUndefined();
  });
});
