/** The names of things: streams (published, renditions), sessions. */
export * from './src/names.js';
