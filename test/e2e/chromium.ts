import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface LaunchedChromium {
  /** The browser's (only) context, on the fresh profile: open pages with context.newPage(). */
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Launches the system (Debian) Chromium headless with a fake camera/microphone, auto-granted
 * media permissions and autoplay allowed, on a fresh profile that close() removes.
 * Throws (never skips) when Chromium is not installed.
 *
 * Playwright refuses `--user-data-dir` in launch() args, so the profile is given the supported
 * way, as a persistent context (a browser whose single context lives in that directory).
 */
export async function launchChromium(
  options: {
    /** Accept any server certificate (a test's self-signed one): `--ignore-certificate-errors`. */
    ignoreCertificateErrors?: boolean;
    /** What the fake camera shows: Chromium's own pattern, or this video file (Y4M or MJPEG, looped). */
    fakeVideoFile?: string;
    /** Plain-HTTP origins to treat as secure contexts (getUserMedia needs one; localhost is). */
    secureOrigins?: string[];
  } = {},
): Promise<LaunchedChromium> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: the e2e tests drive a real browser. ` +
        'Run `npm run setup` (installs the Debian chromium package) or set CHROMIUM_PATH.',
    );
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'rtccdn-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      viewport: { width: 1280, height: 800 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        '--autoplay-policy=no-user-gesture-required',
        ...(options.ignoreCertificateErrors ? ['--ignore-certificate-errors'] : []),
        ...(options.fakeVideoFile ? [`--use-file-for-fake-video-capture=${options.fakeVideoFile}`] : []),
        ...(options.secureOrigins?.length
          ? [`--unsafely-treat-insecure-origin-as-secure=${options.secureOrigins.join(',')}`]
          : []),
      ],
      ...(options.ignoreCertificateErrors ? { ignoreHTTPSErrors: true } : {}),
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
