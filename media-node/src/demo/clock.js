// The synthetic clock source, and the reader that measures glass-to-glass latency from it.
//
// Every frame carries the time it was drawn (Date.now() mod 2^32) as a strip of 32 black/white
// blocks near the bottom, with an inverted copy right below. The player compares each block
// with its inverse (self-calibrating against brightness/compression) and accepts a code only
// when all 32 pairs clearly disagree. Positions are fractions of the frame, so scaling is fine.

export const WIDTH = 640;
export const HEIGHT = 360;
export const FPS = 30;

const BITS = 32;
const ROW_H = 24;
const ROW_TOP = HEIGHT - 2 * ROW_H - 12; // data row; the inverted row follows directly
const MIN_CONTRAST = 40; // of 255, between a block and its inverse
const PLAUSIBLE_MS = 60_000; // codes further than this from now are noise, not a clock

const WRAP = 2 ** 32;

export function nowCode() {
  return (Date.now() % WRAP) >>> 0;
}

/** Milliseconds between a code and now, handling the 2^32 wrap; may be slightly negative (skew). */
export function ageOf(code, now = nowCode()) {
  let age = (now - code) % WRAP;
  if (age > WRAP / 2) age -= WRAP;
  if (age < -WRAP / 2) age += WRAP;
  return age;
}

function pad(value, width = 2) {
  return String(value).padStart(width, '0');
}

function drawFrame(ctx, frame) {
  const now = Date.now();
  const d = new Date(now);

  const bg = ctx.createLinearGradient(0, 0, WIDTH, HEIGHT);
  bg.addColorStop(0, '#142033');
  bg.addColorStop(1, '#2a1838');
  ctx.fillStyle = bg;
  ctx.fillRect(0, 0, WIDTH, HEIGHT);

  // A sweeping hand so motion is obvious even when the digits look static.
  const angle = ((now % 1000) / 1000) * Math.PI * 2 - Math.PI / 2;
  ctx.strokeStyle = '#ffb454';
  ctx.lineWidth = 6;
  ctx.lineCap = 'round';
  ctx.beginPath();
  ctx.arc(WIDTH - 52, 52, 30, -Math.PI / 2, angle);
  ctx.stroke();

  ctx.fillStyle = '#8fa3bf';
  ctx.font = '600 18px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  ctx.fillText('rtccdn · synthetic clock', 24, 22);
  ctx.fillText(`frame ${frame}`, 24, 46);

  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const millis = `.${pad(d.getMilliseconds(), 3)}`;
  const big = 'bold 88px ui-monospace, "DejaVu Sans Mono", monospace';
  const small = 'bold 52px ui-monospace, "DejaVu Sans Mono", monospace';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.font = big;
  const timeWidth = ctx.measureText(time).width;
  ctx.font = small;
  const x = (WIDTH - timeWidth - ctx.measureText(millis).width) / 2;
  ctx.fillStyle = '#ffb454';
  ctx.fillText(millis, x + timeWidth, 200);
  ctx.font = big;
  ctx.fillStyle = '#ffffff';
  ctx.fillText(time, x, 200);

  // The machine-readable timestamp, drawn last so it is exactly the time of this frame.
  const code = (now % WRAP) >>> 0;
  const cell = WIDTH / BITS;
  for (let bit = 0; bit < BITS; bit++) {
    const one = (code >>> bit) & 1;
    ctx.fillStyle = one ? '#ffffff' : '#000000';
    ctx.fillRect(bit * cell, ROW_TOP, cell, ROW_H);
    ctx.fillStyle = one ? '#000000' : '#ffffff';
    ctx.fillRect(bit * cell, ROW_TOP + ROW_H, cell, ROW_H);
  }
}

/**
 * A ticker that keeps running in background tabs: timers in a worker are not throttled like the
 * page's own, and rAF stops entirely when the tab is hidden.
 */
function startTicker(intervalMs, onTick) {
  try {
    const source = `setInterval(() => postMessage(0), ${intervalMs});`;
    const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
    const worker = new Worker(url);
    URL.revokeObjectURL(url);
    worker.onmessage = onTick;
    return () => worker.terminate();
  } catch {
    const timer = setInterval(onTick, intervalMs);
    return () => clearInterval(timer);
  }
}

/** A beep each second (a 880 Hz Opus-friendly tone), or null when Web Audio is unavailable. */
function startBeeper() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    const out = ctx.createMediaStreamDestination();
    osc.frequency.value = 880;
    gain.gain.value = 0;
    osc.connect(gain).connect(out);
    osc.start();
    let lastSecond = -1;
    return {
      track: out.stream.getAudioTracks()[0],
      tick() {
        if (ctx.state === 'suspended') ctx.resume().catch(() => {});
        const second = Math.floor(Date.now() / 1000);
        if (second === lastSecond) return;
        lastSecond = second;
        const t = ctx.currentTime;
        gain.gain.cancelScheduledValues(t);
        gain.gain.setValueAtTime(0.15, t);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.12);
      },
      stop() {
        osc.stop();
        ctx.close().catch(() => {});
      },
    };
  } catch {
    return null;
  }
}

/** Starts the synthetic clock: returns { stream, stop() } with a 640x360@30 video (+ beep audio). */
export function startClockSource() {
  const canvas = document.createElement('canvas');
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const ctx = canvas.getContext('2d');
  let frame = 0;
  drawFrame(ctx, frame);
  const stream = canvas.captureStream(FPS);
  const beeper = startBeeper();
  if (beeper?.track) stream.addTrack(beeper.track);
  const stopTicker = startTicker(1000 / FPS, () => {
    drawFrame(ctx, ++frame);
    beeper?.tick();
  });
  return {
    stream,
    stop() {
      stopTicker();
      beeper?.stop();
      for (const track of stream.getTracks()) track.stop();
    },
  };
}

/**
 * Reads clock codes from a playing <video>. Call read() once per presented frame; returns the
 * code's age in ms, or null when the frame carries no valid code (e.g. a camera).
 */
export class CodeReader {
  constructor() {
    this.canvas = document.createElement('canvas');
    this.canvas.width = BITS * 8;
    this.canvas.height = 16;
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
  }

  read(video) {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (!w || !h) return null;
    // Copy just the two strip rows, scaled to 8x8 pixels per block.
    const sy = (ROW_TOP / HEIGHT) * h;
    const sh = ((2 * ROW_H) / HEIGHT) * h;
    const { canvas, ctx } = this;
    ctx.drawImage(video, 0, sy, w, sh, 0, 0, canvas.width, canvas.height);
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const luma = (x, y) => {
      let sum = 0;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const i = ((y + dy) * canvas.width + (x + dx)) * 4;
          sum += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
        }
      }
      return sum / 9;
    };
    let code = 0;
    for (let bit = 0; bit < BITS; bit++) {
      const x = bit * 8 + 4;
      const a = luma(x, 4);
      const b = luma(x, 12);
      if (Math.abs(a - b) < MIN_CONTRAST) return null;
      if (a > b) code |= 1 << bit;
    }
    const age = ageOf(code >>> 0);
    return Math.abs(age) <= PLAUSIBLE_MS ? age : null;
  }
}
