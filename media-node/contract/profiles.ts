/** Rendition profiles: what PROFILES holds and the CDN resource declares. */
export * from './src/profiles.js';
