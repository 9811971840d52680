import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

const DEMO_DIR = fileURLToPath(new URL('../demo/', import.meta.url));
const FILES: Record<string, string> = {
  '/': 'index.html',
  '/demo/app.js': 'app.js',
  '/demo/whip-whep.js': 'whip-whep.js',
  '/demo/clock.js': 'clock.js',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
};

/** The demo page: publish a camera or synthetic clock via WHIP, play any stream via WHEP. */
export function registerDemoRoutes(app: FastifyInstance): void {
  for (const [route, file] of Object.entries(FILES)) {
    const body = readFileSync(new URL(file, `file://${DEMO_DIR}`));
    const type = TYPES[file.split('.').pop() ?? ''] ?? 'application/octet-stream';
    app.get(route, async (_request, reply) =>
      reply.header('Content-Type', type).header('Cache-Control', 'no-cache').send(body),
    );
  }
}
