import { CodeReader, startClockSource } from './clock.js';
import { backoffMs, retryable, whepPlay, whipPublish } from './whip-whep.js';

const params = new URLSearchParams(location.search);
const server = (params.get('server') || (location.origin === 'null' ? '' : location.origin)).replace(
  /\/+$/,
  '',
);
const NAME_RE = /^[A-Za-z0-9._~-]{1,128}$/;

/** Read by the end-to-end test (and handy in the console). */
const state = {
  publishing: false,
  source: null,
  playing: false,
  framesDecoded: 0,
  latencyMs: null,
  width: 0,
  height: 0,
  fps: 0,
  lastError: null,
  /** Sessions started again after the server ended one (drain) or the connection was lost. */
  rejoins: 0,
  republishes: 0,
  /** Why the last session ended (`node-draining`, `unreachable`, `connection-lost`…). */
  lastEndReason: null,
  /** Frames presented by the video element across sessions, and the longest pause between two. */
  framesPresented: 0,
  longestGapMs: 0,
  lastGapMs: 0,
};
window.rtccdnDemo = { state, server };

const $ = (id) => document.getElementById(id);
$('server').textContent = server || '(none: add ?server=http://host:port)';

function setStatus(id, text, kind = '') {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${kind}`;
  if (kind === 'error') state.lastError = text;
}

function streamName(inputId) {
  const name = $(inputId).value.trim();
  if (!NAME_RE.test(name)) throw new Error('stream name must be 1-128 characters of A-Z a-z 0-9 . _ ~ -');
  return name;
}

function endpoint(protocol, name) {
  return `${server}/${protocol}/${encodeURIComponent(name)}`;
}

// ---------------------------------------------------------------- publish

function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

let pub = null; // { source, session }

async function openCamera() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch {
    return navigator.mediaDevices.getUserMedia({ video }); // a camera without a microphone
  }
}

async function startPublish() {
  await stopPublish();
  const token = $('pub-token').value.trim();
  const wanted = document.querySelector('input[name=source]:checked')?.value ?? 'clock';
  let name;
  try {
    name = streamName('pub-name');
  } catch (error) {
    setStatus('pub-status', error.message, 'error');
    return;
  }
  $('pub-start').disabled = true;
  $('pub-stop').disabled = false;
  setStatus('pub-status', 'starting…');

  let source;
  let note = '';
  if (wanted === 'camera') {
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw new Error('getUserMedia unavailable (needs https)');
      const stream = await openCamera();
      source = { kind: 'camera', stream, stop: () => stopTracks(stream) };
    } catch (error) {
      note = ` (no camera: ${error.message || error.name}; using the synthetic clock)`;
    }
  }
  source ??= { kind: 'clock', ...startClockSource() };
  $('preview').srcObject = source.stream;
  const current = { source, session: null };
  pub = current;

  current.name = name;
  current.token = token;
  current.note = note;
  current.attempt = 0;
  await connectPublish(current);
}

/**
 * Publishes `current.source` (again). WHIP clients reconnect on failure: a session the server
 * ends (an origin shutting down) or a lost connection (an origin that died) is published again
 * at the same URL with backoff — the origin behind it (a Service) may be another one, which
 * takes the stream's claim over; edges follow it and viewers keep their sessions.
 */
async function connectPublish(current) {
  const { name, source, note } = current;
  try {
    current.session = await whipPublish(endpoint('whip', name), source.stream, current.token);
  } catch (error) {
    if (pub !== current) return;
    if (current.attempt > 0 && retryable(error)) {
      setStatus('pub-status', `re-publishing “${name}”… (${error.message})`);
      current.timer = setTimeout(
        () => pub === current && connectPublish(current),
        backoffMs(current.attempt++, error.retryAfterMs),
      );
      return;
    }
    await stopPublish();
    setStatus('pub-status', `publish failed: ${error.message}`, 'error');
    return;
  }
  if (pub !== current) {
    current.session.stop();
    return;
  }
  state.source = source.kind;
  setStatus('pub-status', `connecting “${name}”…${note}`);
  const session = current.session;
  const pc = session.pc;
  pc.addEventListener('connectionstatechange', () => {
    if (pub !== current || current.session !== session) return;
    if (pc.connectionState === 'connected') {
      state.publishing = true;
      current.attempt = 0;
      setStatus('pub-status', `live: “${name}” (${source.kind})${note}`, 'ok');
    }
  });
  session.onEnd(async (why) => {
    if (pub !== current || current.session !== session) return;
    state.publishing = false;
    const reason = (await session.stop()) ?? why;
    if (pub !== current) return;
    state.lastEndReason = reason;
    state.republishes++;
    setStatus('pub-status', `session ended (${reason}): re-publishing…`);
    current.attempt = Math.max(current.attempt, 1);
    current.timer = setTimeout(() => pub === current && connectPublish(current), backoffMs(0));
  });
}

async function stopPublish() {
  const current = pub;
  pub = null;
  state.publishing = false;
  state.source = null;
  $('pub-start').disabled = false;
  $('pub-stop').disabled = true;
  if (!current) return;
  clearTimeout(current.timer);
  $('preview').srcObject = null;
  current.source.stop();
  await current.session?.stop();
  setStatus('pub-status', 'stopped');
}

// ---------------------------------------------------------------- play

let play = null; // { session, timers, retry }
const reader = new CodeReader();

async function startPlay() {
  await stopPlay();
  let name;
  try {
    name = streamName('play-name');
  } catch (error) {
    setStatus('play-status', error.message, 'error');
    return;
  }
  // One MediaStream for the whole play: a re-join swaps its tracks, the video element keeps it.
  const remote = new MediaStream();
  const current = { name, session: null, timers: [], remote, attempt: 0, framesBefore: 0 };
  play = current;
  $('play-start').disabled = true;
  $('play-stop').disabled = false;
  const video = $('player');
  video.srcObject = remote;
  current.timers.push(setInterval(() => pollStats(current), 500));
  watchFrames(current, video);
  await connectPlay(current);
}

/**
 * Plays `current.name` (again). The player re-joins transparently: when the server ends the
 * session (a draining edge at its deadline: DTLS close, then `410 SESSION_ENDED` with reason
 * `node-draining` on the session resource) or the connection is lost (an edge that died), it
 * POSTs the same WHEP URL again with backoff — a Service sends it to another edge — and swaps
 * the new tracks into the MediaStream the video element plays. 503 (draining, busy) and network
 * errors are retried; 404 means the stream is not live (any more).
 */
async function connectPlay(current) {
  if (!current.everPlayed) setStatus('play-status', `connecting to “${current.name}”…`);
  let session;
  try {
    session = await whepPlay(endpoint('whep', current.name), (stream) => {
      if (play !== current) return;
      for (const track of stream.getTracks()) {
        for (const old of current.remote.getTracks()) {
          if (old.kind === track.kind && old !== track) current.remote.removeTrack(old);
        }
        if (!current.remote.getTracks().includes(track)) current.remote.addTrack(track);
      }
    });
  } catch (error) {
    if (play !== current) return;
    if (error.status === 404 && !current.everPlayed) {
      // Not live (yet): keep trying, so a player can be opened before the publisher.
      setStatus('play-status', `“${current.name}” is not live — retrying…`);
      current.timers.push(setTimeout(() => play === current && connectPlay(current), 2000));
    } else if (error.status === 404) {
      state.playing = false;
      setStatus('play-status', `“${current.name}” ended`, 'error');
    } else if (current.everPlayed && retryable(error)) {
      const delay = backoffMs(current.attempt++, error.retryAfterMs);
      setStatus('play-status', `re-joining “${current.name}” in ${delay} ms… (${error.message})`);
      current.timers.push(setTimeout(() => play === current && connectPlay(current), delay));
    } else {
      setStatus('play-status', `play failed: ${error.message}`, 'error');
      await stopPlay(false);
    }
    return;
  }
  if (play !== current) {
    session.stop();
    return;
  }
  current.session = session;
  const pc = session.pc;
  pc.addEventListener('connectionstatechange', () => {
    if (play !== current || current.session !== session) return;
    if (pc.connectionState === 'connected') {
      state.playing = true;
      current.everPlayed = true;
      current.attempt = 0;
      setStatus('play-status', `playing “${current.name}”`, 'ok');
    }
  });
  session.onEnd(async (why) => {
    if (play !== current || current.session !== session) return;
    state.playing = false;
    current.framesBefore = state.framesDecoded;
    current.lastStats = null;
    // The session resource says why the server ended it (and a DELETE is what WHEP asks of a
    // player leaving a session anyway).
    const reason = (await session.stop()) ?? why;
    if (play !== current) return;
    state.lastEndReason = reason;
    if (reason === 'gone') {
      // Forgotten by a live server: its stream ended. One try tells (404 → "ended").
      setStatus('play-status', `“${current.name}” ended — checking…`);
    } else {
      setStatus('play-status', `session ended (${reason}): re-joining “${current.name}”…`);
    }
    state.rejoins++;
    current.timers.push(setTimeout(() => play === current && connectPlay(current), backoffMs(0)));
  });
}

async function stopPlay(clearStatus = true) {
  const current = play;
  play = null;
  Object.assign(state, { playing: false, latencyMs: null, fps: 0 });
  $('play-start').disabled = false;
  $('play-stop').disabled = true;
  if (!current) return;
  for (const timer of current.timers) clearTimeout(timer);
  $('player').srcObject = null;
  await current.session?.stop();
  renderStats(null);
  if (clearStatus) setStatus('play-status', 'stopped');
}

async function pollStats(current) {
  const report = await current.session?.pc.getStats().catch(() => null);
  if (!report || play !== current) return;
  for (const s of report.values()) {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video') continue;
    const now = performance.now();
    const frames = s.framesDecoded ?? 0;
    if (current.lastStats) {
      const seconds = (now - current.lastStats.at) / 1000;
      state.fps = s.framesPerSecond ?? Math.round((frames - current.lastStats.frames) / seconds);
    }
    current.lastStats = { at: now, frames };
    state.framesDecoded = current.framesBefore + frames;
  }
  const video = $('player');
  state.width = video.videoWidth;
  state.height = video.videoHeight;
  renderStats(current);
}

/** Reads the clock code of every presented frame; keeps a rolling median of the latency. */
function watchFrames(current, video) {
  const samples = [];
  let lastCodeAt = 0;
  let frames = 0;
  let lastFrameAt = null;
  const onFrame = () => {
    if (play !== current) return;
    frames++;
    const at = performance.now();
    if (lastFrameAt !== null) {
      state.lastGapMs = Math.round(at - lastFrameAt);
      state.longestGapMs = Math.max(state.longestGapMs, state.lastGapMs);
    }
    lastFrameAt = at;
    state.framesPresented++;
    const age = reader.read(video);
    const now = performance.now();
    if (age !== null) {
      samples.push(age);
      if (samples.length > 30) samples.shift();
      lastCodeAt = now;
      const sorted = [...samples].sort((a, b) => a - b);
      state.latencyMs = Math.round(sorted[sorted.length >> 1]);
    } else if (frames > 15 && now - lastCodeAt > 1500) {
      samples.length = 0;
      state.latencyMs = null;
      current.noCode = true;
    }
    if (age !== null) current.noCode = false;
    schedule();
  };
  const schedule = () => {
    if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(onFrame);
    else requestAnimationFrame(onFrame);
  };
  schedule();
}

function renderStats(current) {
  const latency = $('latency');
  if (!current) latency.textContent = 'glass-to-glass: –';
  else if (state.latencyMs !== null) latency.innerHTML = `glass-to-glass: <b>${state.latencyMs} ms</b>`;
  else latency.textContent = current.noCode ? 'latency: n/a (camera)' : 'glass-to-glass: measuring…';
  $('resolution').textContent = current && state.width ? `${state.width} × ${state.height}` : '– × –';
  $('fps').textContent = current ? `${Math.round(state.fps)} fps` : '– fps';
}

// ---------------------------------------------------------------- live stream list

async function refreshStreams() {
  const list = $('streams');
  let streams;
  try {
    const response = await fetch(`${server}/api/v1/streams`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    ({ streams } = await response.json());
  } catch (error) {
    list.innerHTML = '';
    list.append(
      Object.assign(document.createElement('li'), {
        className: 'empty',
        textContent: `cannot list streams: ${error.message}`,
      }),
    );
    return;
  }
  list.innerHTML = '';
  if (streams.length === 0) {
    list.append(
      Object.assign(document.createElement('li'), { className: 'empty', textContent: 'no live streams' }),
    );
  }
  for (const stream of streams) {
    const button = document.createElement('button');
    button.title = 'play';
    const codecs = stream.tracks.map((t) => (t.codec ?? t.kind).replace(/^(audio|video)\//, '')).join('+');
    const viewers = `${stream.viewers} viewer${stream.viewers === 1 ? '' : 's'}`;
    button.append(
      `▶ ${stream.name} `,
      Object.assign(document.createElement('em'), { textContent: `${codecs} · ${viewers}` }),
    );
    button.addEventListener('click', () => {
      $('play-name').value = stream.name;
      startPlay();
    });
    const li = document.createElement('li');
    li.append(button);
    list.append(li);
  }
}

// ---------------------------------------------------------------- wiring

$('pub-start').addEventListener('click', startPublish);
$('pub-stop').addEventListener('click', () => stopPublish());
$('play-start').addEventListener('click', startPlay);
$('play-stop').addEventListener('click', () => stopPlay());
$('play-unmute').addEventListener('click', () => {
  const video = $('player');
  video.muted = !video.muted;
  $('play-unmute').textContent = video.muted ? 'Unmute' : 'Mute';
});
window.addEventListener('pagehide', () => {
  stopPublish();
  stopPlay();
});

refreshStreams();
setInterval(refreshStreams, 2000);

const autoPublish = params.get('publish');
if (autoPublish !== null) {
  $('pub-name').value = autoPublish || 'demo';
  if (params.get('token')) $('pub-token').value = params.get('token');
  const source = params.get('source') === 'camera' ? 'camera' : 'clock';
  document.querySelector(`input[name=source][value=${source}]`).checked = true;
  startPublish();
}
const autoPlay = params.get('play');
if (autoPlay !== null) {
  $('play-name').value = autoPlay || 'demo';
  startPlay();
}
