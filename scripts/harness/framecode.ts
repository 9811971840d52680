/**
 * Encodes a 32-bit value (a capture timestamp) into a video frame as a grid of black/white
 * blocks that survive lossy compression and scaling, and reads it back at the viewer. Used to
 * prove frames are really decoded, and to measure glass-to-glass latency.
 *
 * Layout: an 8×8 grid over the frame; row 0..3 carry the 32 bits, rows 4..7 carry their
 * inverse (a read is accepted only when every bit agrees with its inverse).
 */
const GRID = 8;
const BITS = 32;
const LOW = 16;
const HIGH = 235;

export function writeCode(
  y: Uint8ClampedArray | Uint8Array,
  width: number,
  height: number,
  value: number,
): void {
  const cellW = Math.floor(width / GRID);
  const cellH = Math.floor(height / GRID);
  for (let bit = 0; bit < BITS * 2; bit++) {
    const row = Math.floor(bit / GRID);
    const col = bit % GRID;
    const dataBit = bit < BITS ? (value >>> bit) & 1 : 1 - ((value >>> (bit - BITS)) & 1);
    const luma = dataBit ? HIGH : LOW;
    for (let py = row * cellH; py < (row + 1) * cellH; py++) {
      y.fill(luma, py * width + col * cellW, py * width + (col + 1) * cellW);
    }
  }
}

/** Returns the encoded value, or undefined when the frame does not carry a consistent code. */
export function readCode(
  y: Uint8ClampedArray | Uint8Array,
  width: number,
  height: number,
): number | undefined {
  const cellW = width / GRID;
  const cellH = height / GRID;
  const bits: number[] = [];
  for (let bit = 0; bit < BITS * 2; bit++) {
    const row = Math.floor(bit / GRID);
    const col = bit % GRID;
    // Average a small window at the cell centre (edges blur under compression).
    const cx = Math.floor((col + 0.5) * cellW);
    const cy = Math.floor((row + 0.5) * cellH);
    const r = Math.max(1, Math.floor(Math.min(cellW, cellH) / 6));
    let sum = 0;
    let n = 0;
    for (let py = cy - r; py <= cy + r; py++) {
      for (let px = cx - r; px <= cx + r; px++) {
        sum += y[py * width + px] ?? 0;
        n++;
      }
    }
    const mean = sum / n;
    bits.push(mean > (LOW + HIGH) / 2 ? 1 : 0);
  }
  let value = 0;
  for (let bit = 0; bit < BITS; bit++) {
    if (bits[bit] === bits[bit + BITS]) return undefined;
    value |= (bits[bit]! << bit) >>> 0;
  }
  return value >>> 0;
}

/** Milliseconds since the epoch, truncated to 32 bits (wraps every ~49 days; fine for deltas). */
export function nowCode(): number {
  return (Date.now() % 0x1_0000_0000) >>> 0;
}

/** Latency in ms between a decoded code and now, handling 32-bit wrap. */
export function ageOf(code: number, now = nowCode()): number {
  return (now - code + 0x1_0000_0000) % 0x1_0000_0000;
}
