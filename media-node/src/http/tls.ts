import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { ConfigError, type TlsFilesConfig } from '../config.js';
import type { Logger } from '../logger.js';

/** A certificate (chain) and its private key, PEM, as read from TLS_CERT_FILE and TLS_KEY_FILE. */
export interface TlsPair {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint of the leaf certificate (as `openssl x509 -fingerprint -sha256` shows it). */
  fingerprint: string;
  /** The leaf certificate's expiry. */
  validTo: string;
}

/**
 * Reads and checks the pair: both files readable, a PEM certificate, a PEM private key (not
 * encrypted), and the key is the certificate's. Throws ConfigError with a one-line message
 * naming the variable at fault.
 */
export function readTlsPair(files: TlsFilesConfig): TlsPair {
  const cert = readPem('TLS_CERT_FILE', files.certFile);
  const key = readPem('TLS_KEY_FILE', files.keyFile);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration: TLS_CERT_FILE ${files.certFile} holds no PEM certificate (${(error as Error).message})`,
    );
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration: TLS_KEY_FILE ${files.keyFile} holds no unencrypted PEM private key (${(error as Error).message})`,
    );
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      `invalid configuration: TLS_KEY_FILE ${files.keyFile} is not the key of the certificate in TLS_CERT_FILE ${files.certFile}`,
    );
  }
  return { cert, key, fingerprint: certificate.fingerprint256, validTo: certificate.validTo };
}

function readPem(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration: ${variable} ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
}

/** What the reloader needs of the server: tls.Server#setSecureContext (HTTPS and HTTP/2 servers). */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
}

/** Changes come through inotify; the poll is a backstop for file systems that do not report them. */
const DEBOUNCE_MS = 200;
const POLL_MS = 10_000;

/**
 * Reloads the certificate and key when their files change, without a restart: new connections
 * get the new pair, open ones keep theirs. The directories are watched, not the files:
 * Kubernetes updates a mounted Secret by swapping a `..data` symlink in the directory (the
 * files themselves are never written), and cert-manager renews by such an update. A new pair
 * that does not check out (half-written, a key of another certificate) is logged once and the
 * current pair is kept; it is tried again at the next change.
 */
export class TlsReloader {
  #current: string;
  #rejected: string | undefined;
  readonly #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #poll: NodeJS.Timeout;

  constructor(
    private readonly files: TlsFilesConfig,
    private readonly target: SecureContextTarget,
    private readonly logger: Logger,
    initial: TlsPair,
  ) {
    this.#current = digest(initial.cert, initial.key);
    for (const directory of new Set([dirname(files.certFile), dirname(files.keyFile)])) {
      try {
        const watcher = watch(directory, { persistent: false }, () => this.#schedule());
        watcher.on('error', (error) =>
          this.logger.warn({ err: error, directory }, 'cannot watch the TLS files any more; polling them'),
        );
        this.#watchers.push(watcher);
      } catch (error) {
        this.logger.warn({ err: error, directory }, 'cannot watch the TLS files; polling them');
      }
    }
    this.#poll = setInterval(() => this.check(), POLL_MS).unref();
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.check(), DEBOUNCE_MS).unref();
  }

  /** Reads the files and installs them if they changed and check out. */
  check(): void {
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = readFileSync(this.files.certFile);
      key = readFileSync(this.files.keyFile);
    } catch (error) {
      this.#reject(`read-error:${(error as Error).message}`, error as Error);
      return;
    }
    const seen = digest(cert, key);
    if (seen === this.#current || seen === this.#rejected) return;
    let pair: TlsPair;
    try {
      pair = readTlsPair(this.files);
      // The files may have changed again between the two reads: install exactly what was checked.
      if (digest(pair.cert, pair.key) !== seen) {
        this.#schedule();
        return;
      }
      this.target.setSecureContext({ cert: pair.cert, key: pair.key });
    } catch (error) {
      this.#reject(seen, error as Error);
      return;
    }
    this.#current = seen;
    this.#rejected = undefined;
    this.logger.info(
      { fingerprint: pair.fingerprint, validTo: pair.validTo },
      'TLS certificate reloaded: new connections use it',
    );
  }

  #reject(seen: string, error: Error): void {
    if (seen === this.#rejected) return;
    this.#rejected = seen;
    this.logger.error(
      { err: error },
      `new TLS certificate/key not used, the current pair is kept: ${error.message.replace(/^invalid configuration: /, '')}`,
    );
  }

  close(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
    for (const watcher of this.#watchers) watcher.close();
  }
}

function digest(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}
