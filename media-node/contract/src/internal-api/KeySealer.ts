import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Seals key material that crosses the node-to-node API (the SRTP keys of relay pipes) with
 * AES-256-GCM under a key derived from CLUSTER_SECRET (HKDF, its own label). Internal traffic
 * is plain HTTP inside the cluster: whoever can read it (a pod on the same network) would
 * otherwise be able to decrypt every relayed stream.
 *
 * Sealed form: base64(iv[12] | ciphertext | tag[16]); `context` is bound as additional data,
 * so a sealed value cannot be moved to another field.
 */
export class KeySealer {
  readonly #key: Buffer;

  constructor(clusterSecret: string) {
    this.#key = Buffer.from(hkdfSync('sha256', clusterSecret, 'rtccdn', 'relay key sealing v1', 32));
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]).toString('base64');
  }

  /** The plaintext; throws SealError when `sealed` was not sealed by this cluster for `context`. */
  open(sealed: string, context: string): string {
    const bytes = Buffer.from(sealed, 'base64');
    if (bytes.length < 12 + 16 + 1) throw new SealError('sealed value is too short');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, bytes.subarray(0, 12));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    try {
      return Buffer.concat([
        decipher.update(bytes.subarray(12, bytes.length - 16)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new SealError('sealed value does not open with this cluster secret');
    }
  }
}

export class SealError extends Error {
  override name = 'SealError';
}
