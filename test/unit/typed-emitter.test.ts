import { afterEach, describe, expect, it } from '@jest/globals';
import { listenerErrors, TypedEmitter } from '../../media-node/src/TypedEmitter.js';

class Door extends TypedEmitter<{ open: [who: string] }> {
  open(who: string): void {
    this.emit('open', who);
  }
}

describe('TypedEmitter', () => {
  const original = listenerErrors.report;
  afterEach(() => {
    listenerErrors.report = original;
  });

  it('calls every listener even when one throws, and reports the error instead of throwing it', () => {
    const reported: string[] = [];
    listenerErrors.report = (emitter, event, error) =>
      void reported.push(`${emitter}.${event}: ${(error as Error).message}`);
    const door = new Door();
    const seen: string[] = [];
    door.on('open', (who) => seen.push(`first ${who}`));
    door.on('open', () => {
      throw new Error('broken listener');
    });
    door.once('open', (who) => seen.push(`once ${who}`));
    expect(() => door.open('alice')).not.toThrow();
    door.open('bob');
    expect(seen).toEqual(['first alice', 'once alice', 'first bob']);
    expect(reported).toEqual(['Door.open: broken listener', 'Door.open: broken listener']);
  });
});
