import type { Stream } from '../media/Stream.js';

/** Finds a stream that originates on this node (other nodes pull these from us). */
export interface StreamLookup {
  find(name: string): Stream | undefined;
}

/** The local copy of a live stream: one that originates here, or one relayed here. */
export interface StreamResolver {
  resolve(name: string): Promise<Stream | undefined>;
}

/**
 * The streams that originate on this node: published here (WHIP) or rendered here (transcoder).
 * One owner for "what do we serve as a source": the publishing path and the transcoder add to
 * it, relays to other nodes and the registry's announcements read it. A stream leaves when it
 * closes.
 */
export class LocalStreams implements StreamLookup {
  readonly #streams = new Map<string, Stream>();
  readonly #renditions = new Set<Stream>();

  /** A stream published here, or (`rendition`) one this node renders. */
  add(stream: Stream, kind: 'published' | 'rendition' = 'published'): void {
    this.#streams.set(stream.name, stream);
    if (kind === 'rendition') this.#renditions.add(stream);
    stream.once('close', () => {
      if (this.#streams.get(stream.name) === stream) this.#streams.delete(stream.name);
      this.#renditions.delete(stream);
    });
  }

  /** The streams published here (not the renditions made here). */
  published(): Stream[] {
    return [...this.#streams.values()].filter((stream) => !this.#renditions.has(stream) && !stream.closed);
  }

  find(name: string): Stream | undefined {
    const stream = this.#streams.get(name);
    return stream && !stream.closed ? stream : undefined;
  }

  has(name: string): boolean {
    return this.find(name) !== undefined;
  }

  get size(): number {
    return this.#streams.size;
  }

  values(): IterableIterator<Stream> {
    return this.#streams.values();
  }

  closeAll(reason: string): void {
    for (const stream of [...this.#streams.values()]) stream.close(reason);
  }
}
