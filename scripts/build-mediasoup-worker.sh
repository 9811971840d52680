#!/usr/bin/env bash
# Builds the mediasoup C++ worker offline against Debian packages, verifies it,
# caches it outside the repo and restores it from that cache.
#
# Usage: scripts/build-mediasoup-worker.sh [--force]
#
#   --force   ignore the installed binary and the cache; rebuild from source.
#
# Result: node_modules/mediasoup/worker/out/Release/mediasoup-worker (the path
# mediasoup uses when MEDIASOUP_WORKER_BIN is not set).
#
# Order of attempts:
#   1. installed binary already verified for the current cache key -> done
#      (fast path: checksum + smoke test only); an installed binary without
#      such a record gets the full verification below;
#   2. cached binary for the current key -> copy in, verify, done;
#   3. install missing Debian packages, build with meson/ninja using the
#      subproject shims in scripts/mediasoup-shims/, verify, install, cache.
#
# Environment:
#   RTCCDN_CACHE_DIR        cache root (default
#                           ${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/mediasoup-worker);
#                           entries live in <root>/<key>/mediasoup-worker.
#   RTCCDN_BUILD_JOBS       parallel compile jobs (default: nproc).
#   RTCCDN_KEEP_BUILD_DIR=1 keep the scratch build directory.
#   RTCCDN_VERBOSE=1        stream meson/ninja output instead of logging it.
#   MEDIASOUP_WORKER_BIN    ignored for the install location (the binary is
#                           always installed into node_modules).
#
# Verification: (a) run with an empty environment, the worker must exit 41;
# (b) a Node check through the mediasoup API (see functional_test).
#
# Cache key: <mediasoup version>-<16 hex of sha256 over: mediasoup version,
# arch, sha256 of this script, of the patches and of the shim tree, and the
# dpkg versions of KEY_PACKAGES>; <root>/<key>/key.txt lists the inputs.
#
# The binary links Debian's shared libraries (libssl3, libuv1, libsrtp2-1 and
# libabsl20220623, for the libwebrtc bandwidth estimator; FlatBuffers is used
# header-only): a runtime image needs those packages.
#
# Everything needed lives in this repo (this script + scripts/mediasoup-shims).
set -Eeuo pipefail

readonly LOG_PREFIX='[mediasoup-worker]'

log() { printf '%s %s\n' "$LOG_PREFIX" "$*"; }
warn() { printf '%s WARNING: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
	printf '%s ERROR: %s\n' "$LOG_PREFIX" "$*" >&2
	exit 1
}
# One line for unexpected failures (printed once, by the main shell).
trap 'rc=$?; [[ $BASH_SUBSHELL -ne 0 ]] || printf "%s ERROR: command failed (exit %s) at line %s: %s\n" "$LOG_PREFIX" "$rc" "$LINENO" "$BASH_COMMAND" >&2; exit "$rc"' ERR

# --------------------------------------------------------------------------
# Arguments and paths
# --------------------------------------------------------------------------

FORCE=0
for arg in "$@"; do
	case "$arg" in
	--force) FORCE=1 ;;
	-h | --help)
		sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: $arg (usage: $0 [--force])" ;;
	esac
done

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")"
SCRIPT_DIR="$(dirname "$SCRIPT_PATH")"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"
SHIM_DIR="$SCRIPT_DIR/mediasoup-shims"
PATCH_DIR="$SCRIPT_DIR/mediasoup-patches"
MS_DIR="$REPO_ROOT/node_modules/mediasoup"
TARGET_DIR="$MS_DIR/worker/out/Release"
TARGET="$TARGET_DIR/mediasoup-worker"
# Records "binary sha256 + cache key" of the last fully verified install.
STAMP="$TARGET_DIR/.rtccdn-worker-verified"
CACHE_ROOT="${RTCCDN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/mediasoup-worker}"

# Build tools (not part of the cache key except the compiler and flatc, which
# shape the binary) and the -dev packages the worker is compiled/linked against.
readonly TOOL_PACKAGES=(pkg-config meson ninja-build patch)
readonly KEY_PACKAGES=(
	g++
	flatbuffers-compiler
	libabsl-dev
	libflatbuffers-dev
	libsrtp2-dev
	libssl-dev
	libuv1-dev
)
# Subprojects (wrap names) that are only used on other platforms.
readonly UNSHIMMED_OK=(wingetopt)

[[ -f "$MS_DIR/package.json" ]] || die "node_modules/mediasoup not found in $REPO_ROOT (run npm ci first)"
[[ -d "$SHIM_DIR" ]] || die "shim directory missing: $SHIM_DIR"
command -v node >/dev/null 2>&1 || die "node is required (to verify the worker)"

MS_VERSION="$(node -p 'require(process.argv[1]).version' "$MS_DIR/package.json")"
[[ -n "$MS_VERSION" ]] || die "cannot read the mediasoup version"

if [[ -n "${MEDIASOUP_WORKER_BIN:-}" && "${MEDIASOUP_WORKER_BIN}" != "$TARGET" ]]; then
	log "note: MEDIASOUP_WORKER_BIN is set ($MEDIASOUP_WORKER_BIN); installing into node_modules anyway"
fi

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Installed version of a Debian package, or "missing".
pkg_version() {
	local status
	status="$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true)"
	if [[ "$status" == installed\ * ]]; then
		printf '%s' "${status#installed }"
	else
		printf 'missing'
	fi
}

# Text the cache key is derived from (also stored next to cached binaries).
key_material() {
	local p
	printf 'mediasoup=%s\n' "$MS_VERSION"
	printf 'arch=%s\n' "$(dpkg --print-architecture 2>/dev/null || uname -m)"
	printf 'script=%s\n' "$(sha256_of "$SCRIPT_PATH")"
	printf 'patches=%s\n' "$(
		cd "$PATCH_DIR" &&
			find . -type f -name '*.patch' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1
	)"
	printf 'shims=%s\n' "$(
		cd "$SHIM_DIR" &&
			find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
	)"
	for p in "${KEY_PACKAGES[@]}"; do
		printf 'pkg:%s=%s\n' "$p" "$(pkg_version "$p")"
	done
}

# Sets KEY_TEXT and KEY ("<mediasoup version>-<16 hex digits>").
compute_key() {
	KEY_TEXT="$(key_material)"
	KEY="${MS_VERSION}-$(printf '%s\n' "$KEY_TEXT" | sha256sum | cut -c1-16)"
}

# (a) With an empty environment the worker must exit with code 41
#     (it refuses to run without MEDIASOUP_VERSION); proves it loads and links.
smoke_test() {
	local bin="$1" rc=0
	[[ -f "$bin" && -x "$bin" ]] || return 1
	timeout 20 env -i "$bin" </dev/null >/dev/null 2>&1 || rc=$?
	if [[ "$rc" -ne 41 ]]; then
		warn "smoke test of $bin: exit code $rc (expected 41)"
		if command -v ldd >/dev/null 2>&1 && ldd "$bin" 2>/dev/null | grep -q 'not found'; then
			warn "missing shared libraries: $(ldd "$bin" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
		fi
		return 1
	fi
}

# (b) Functional check through the mediasoup Node API: Workers, Routers,
#     WebRtcServer + WebRtcTransport, PipeTransports with SRTP carrying RTP
#     between two workers, SRTP PlainTransports for every crypto suite, close.
functional_test() {
	local bin="$1" rc=0
	MEDIASOUP_WORKER_BIN="$bin" RTCCDN_MS_DIR="$MS_DIR" \
		timeout 120 node --input-type=module <<'NODE_EOF' || rc=$?
import { createRequire } from 'node:module';
import dgram from 'node:dgram';

const P = '[mediasoup-worker]';
const require = createRequire(`${process.env.RTCCDN_MS_DIR}/package.json`);
const mediasoup = require(process.env.RTCCDN_MS_DIR);

const fail = (msg) => {
	console.error(`${P} functional check failed: ${msg}`);
	process.exit(1);
};
const check = (cond, msg) => {
	if (!cond) fail(msg);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const watchdog = setTimeout(() => fail('timed out'), 60_000);

const ip = '127.0.0.1';
const listenInfo = { protocol: 'udp', ip };
const mediaCodecs = [
	{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
	{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];

async function waitFor(what, fn, timeoutMs = 5000) {
	const end = Date.now() + timeoutMs;
	while (Date.now() < end) {
		if (await fn()) return;
		await sleep(20);
	}
	fail(`timeout waiting for ${what}`);
}

// Minimal RTP packet: V=2, given PT/SSRC, 20 byte payload.
function rtp(pt, seq, ssrc) {
	const b = Buffer.alloc(32);
	b[0] = 0x80;
	b[1] = pt & 0x7f;
	b.writeUInt16BE(seq & 0xffff, 2);
	b.writeUInt32BE((seq * 960) >>> 0, 4);
	b.writeUInt32BE(ssrc >>> 0, 8);
	b.fill(0xab, 12);
	return b;
}

const packetCount = async (entity) =>
	(await entity.getStats()).reduce((n, s) => n + (s.packetCount ?? 0), 0);

try {
	const workers = [];
	for (let i = 0; i < 2; i++) {
		const w = await mediasoup.createWorker({ logLevel: 'warn' });
		w.on('died', (err) => fail(`worker died: ${err}`));
		workers.push(w);
	}
	const [w1, w2] = workers;
	const r1 = await w1.createRouter({ mediaCodecs });
	const r2 = await w2.createRouter({ mediaCodecs });
	check(r1.rtpCapabilities.codecs.some((c) => c.mimeType === 'video/VP8'), 'router lacks VP8');

	// WebRtcServer (UDP + TCP) and a WebRtcTransport on it.
	const webRtcServer = await w1.createWebRtcServer({
		listenInfos: [
			{ protocol: 'udp', ip },
			{ protocol: 'tcp', ip },
		],
	});
	const webRtcTransport = await r1.createWebRtcTransport({ webRtcServer });
	const protos = new Set(webRtcTransport.iceCandidates.map((c) => c.protocol));
	check(protos.has('udp') && protos.has('tcp'), 'WebRtcTransport lacks udp/tcp ICE candidates');
	check(webRtcTransport.dtlsParameters.fingerprints.length > 0, 'no DTLS fingerprints');
	await webRtcTransport.getStats();

	// DTLS handshake (mediasoup as DTLS server) with a real libwebrtc peer, when the
	// dev dependency @roamhq/wrtc is installed: the part of the worker that links
	// Debian's libssl, and the part that crashed before patch 0001.
	let dtls = 'skipped (@roamhq/wrtc not installed)';
	let wrtc;
	try {
		wrtc = createRequire(`${process.env.RTCCDN_MS_DIR}/package.json`)('@roamhq/wrtc');
	} catch {}
	if (wrtc) {
		const transport = await r1.createWebRtcTransport({ webRtcServer });
		const pc = new wrtc.RTCPeerConnection();
		pc.createDataChannel('check');
		await pc.setLocalDescription(await pc.createOffer());
		await waitFor('ICE gathering', () => pc.iceGatheringState === 'complete');
		const offer = pc.localDescription.sdp;
		const fp = /a=fingerprint:(\S+) (\S+)/.exec(offer);
		const mid = /a=mid:(\S+)/.exec(offer)[1];
		await transport.connect({
			dtlsParameters: { role: 'client', fingerprints: [{ algorithm: fp[1], value: fp[2] }] },
		});
		const local = transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256');
		const { usernameFragment, password } = transport.iceParameters;
		const candidates = transport.iceCandidates
			.filter((c) => c.protocol === 'udp')
			.map((c, i) => `a=candidate:${c.foundation} 1 udp ${c.priority - i} ${c.address} ${c.port} typ host`);
		const answer = [
			'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=ice-lite', `a=group:BUNDLE ${mid}`,
			'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 127.0.0.1', `a=mid:${mid}`,
			`a=ice-ufrag:${usernameFragment}`, `a=ice-pwd:${password}`,
			`a=fingerprint:sha-256 ${local.value}`, 'a=setup:passive', 'a=sctp-port:5000',
			...candidates, 'a=end-of-candidates', '',
		].join('\r\n');
		await pc.setRemoteDescription({ type: 'answer', sdp: answer });
		await waitFor('DTLS connected with a libwebrtc peer', () => transport.dtlsState === 'connected', 10_000);
		dtls = `ok (${transport.dtlsState})`;
		pc.close();
		transport.close();
	}

	// Source: RTP sent from this process into a comedia PlainTransport on r1.
	const ingest = await r1.createPlainTransport({ listenInfo, rtcpMux: true, comedia: true });
	const producer = await ingest.produce({
		kind: 'audio',
		rtpParameters: {
			codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }],
			encodings: [{ ssrc: 22222222 }],
		},
	});

	// Two PipeTransports with SRTP, on two workers, connected to each other.
	const pipeA = await r1.createPipeTransport({ listenInfo, enableSrtp: true });
	const pipeB = await r2.createPipeTransport({ listenInfo, enableSrtp: true });
	check(pipeA.srtpParameters && pipeB.srtpParameters, 'pipe transports without SRTP parameters');
	await pipeA.connect({ ip, port: pipeB.tuple.localPort, srtpParameters: pipeB.srtpParameters });
	await pipeB.connect({ ip, port: pipeA.tuple.localPort, srtpParameters: pipeA.srtpParameters });
	const pipeConsumer = await pipeA.consume({ producerId: producer.id });
	const pipeProducer = await pipeB.produce({
		id: producer.id,
		kind: pipeConsumer.kind,
		rtpParameters: pipeConsumer.rtpParameters,
		paused: pipeConsumer.producerPaused,
	});

	// SRTP PlainTransport pairs r1 -> r2, one per crypto suite.
	const suites = [
		'AEAD_AES_256_GCM',
		'AEAD_AES_128_GCM',
		'AES_CM_128_HMAC_SHA1_80',
		'AES_CM_128_HMAC_SHA1_32',
	];
	const suiteProducers = [];
	for (const srtpCryptoSuite of suites) {
		const opts = { listenInfo, rtcpMux: true, comedia: false, enableSrtp: true, srtpCryptoSuite };
		const tA = await r1.createPlainTransport(opts);
		const tB = await r2.createPlainTransport(opts);
		await tA.connect({ ip, port: tB.tuple.localPort, srtpParameters: tB.srtpParameters });
		await tB.connect({ ip, port: tA.tuple.localPort, srtpParameters: tA.srtpParameters });
		const c = await tA.consume({ producerId: producer.id, rtpCapabilities: r1.rtpCapabilities });
		const p = await tB.produce({ kind: c.kind, rtpParameters: c.rtpParameters });
		suiteProducers.push([srtpCryptoSuite, p]);
	}

	// Sink: r2 forwards the piped stream to a UDP socket in this process.
	const sink = dgram.createSocket('udp4');
	await new Promise((resolve) => sink.bind(0, ip, resolve));
	const egress = await r2.createPlainTransport({ listenInfo, rtcpMux: true, comedia: false });
	await egress.connect({ ip, port: sink.address().port });
	const consumer = await egress.consume({
		producerId: pipeProducer.id,
		rtpCapabilities: r2.rtpCapabilities,
	});
	const outPt = consumer.rtpParameters.codecs[0].payloadType;
	let received = 0;
	sink.on('message', (m) => {
		if (m.length >= 12 && m[0] >> 6 === 2 && (m[1] & 0x7f) === outPt) received++;
	});

	const src = dgram.createSocket('udp4');
	await new Promise((resolve) => src.bind(0, ip, resolve));
	let seq = 1;
	const sender = setInterval(() => src.send(rtp(111, seq++, 22222222), ingest.tuple.localPort, ip), 10);

	await waitFor('RTP through the SRTP pipe', async () => received >= 5 && (await packetCount(pipeProducer)) >= 5);
	for (const [suite, p] of suiteProducers) {
		await waitFor(`RTP over SRTP ${suite}`, async () => (await packetCount(p)) >= 5);
	}
	clearInterval(sender);
	src.close();
	sink.close();

	// Close everything and make sure both worker processes exit.
	for (const w of workers) {
		const exited = new Promise((resolve) => w.on('subprocessclose', resolve));
		w.close();
		check(w.closed, 'worker.close() did not mark the worker closed');
		await Promise.race([exited, sleep(5000).then(() => fail('worker process did not exit'))]);
	}
	check(webRtcServer.closed && webRtcTransport.closed && pipeA.closed, 'entities not closed with worker');

	clearTimeout(watchdog);
	console.log(
		`${P} functional check verified: WebRtcServer+WebRtcTransport ok, DTLS ${dtls}, SRTP pipe forwarded ${received} RTP packets, SRTP suites ok: ${suites.length}`,
	);
	process.exit(0);
} catch (error) {
	fail(error?.stack ?? String(error));
}
NODE_EOF
	[[ "$rc" -eq 0 ]]
}

verify_binary() {
	smoke_test "$1" && functional_test "$1"
}

write_stamp() {
	printf 'sha256=%s\nkey=%s\n' "$(sha256_of "$TARGET")" "$KEY" >"$STAMP.tmp.$$"
	mv -f "$STAMP.tmp.$$" "$STAMP"
}

stamp_matches() {
	[[ -f "$STAMP" && -f "$TARGET" ]] || return 1
	[[ "$(cat "$STAMP")" == "$(printf 'sha256=%s\nkey=%s' "$(sha256_of "$TARGET")" "$KEY")" ]]
}

# Installs a verified candidate binary at $TARGET atomically (verify first).
install_candidate() {
	local src="$1" tmp
	mkdir -p "$TARGET_DIR"
	tmp="$TARGET.tmp.$$"
	cp -f "$src" "$tmp"
	chmod 0755 "$tmp"
	if ! verify_binary "$tmp"; then
		rm -f "$tmp"
		return 1
	fi
	mv -f "$tmp" "$TARGET"
	write_stamp
}

# Fast path: binary present and verified for this key. Returns 0 if done.
check_installed() {
	[[ -f "$TARGET" ]] || return 1
	if stamp_matches && smoke_test "$TARGET"; then
		return 0
	fi
	log "found $TARGET without a matching verification stamp; verifying it"
	if verify_binary "$TARGET"; then
		write_stamp
		return 0
	fi
	warn "installed worker failed verification; replacing it"
	rm -f "$TARGET" "$STAMP"
	return 1
}

cache_entry() { printf '%s/%s' "$CACHE_ROOT" "$KEY"; }

# Restores from cache. Returns 0 if a verified binary was installed.
restore_from_cache() {
	local dir
	dir="$(cache_entry)"
	[[ -f "$dir/mediasoup-worker" ]] || return 1
	log "restoring cached worker $dir/mediasoup-worker"
	if [[ ! -f "$dir/mediasoup-worker.sha256" ]] ||
		[[ "$(cat "$dir/mediasoup-worker.sha256")" != "$(sha256_of "$dir/mediasoup-worker")" ]]; then
		warn "cached worker checksum mismatch; discarding $dir"
		rm -rf "$dir"
		return 1
	fi
	if ! install_candidate "$dir/mediasoup-worker"; then
		warn "cached worker failed verification; discarding $dir"
		rm -rf "$dir"
		return 1
	fi
}

store_in_cache() {
	local dir tmp_bin
	dir="$(cache_entry)"
	mkdir -p "$dir"
	printf '%s\n' "$KEY_TEXT" >"$dir/key.txt.tmp.$$"
	mv -f "$dir/key.txt.tmp.$$" "$dir/key.txt"
	sha256_of "$TARGET" >"$dir/mediasoup-worker.sha256.tmp.$$"
	mv -f "$dir/mediasoup-worker.sha256.tmp.$$" "$dir/mediasoup-worker.sha256"
	# Binary last: its presence means the entry is complete.
	tmp_bin="$dir/.mediasoup-worker.tmp.$$"
	cp -f "$TARGET" "$tmp_bin"
	chmod 0755 "$tmp_bin"
	mv -f "$tmp_bin" "$dir/mediasoup-worker"
	log "cached at $dir/mediasoup-worker"
}

ensure_packages() {
	local missing=() p sudo=() apt_log
	for p in "${TOOL_PACKAGES[@]}" "${KEY_PACKAGES[@]}"; do
		[[ "$(pkg_version "$p")" != missing ]] || missing+=("$p")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "Debian packages present"
		return 0
	fi
	if [[ "$(id -u)" -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "missing Debian packages (${missing[*]}) and not root; install them first"
		sudo=(sudo)
	fi
	log "installing Debian packages: ${missing[*]}"
	apt_log="$(mktemp "${TMPDIR:-/tmp}/rtccdn-apt.XXXXXX")"
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$apt_log" 2>&1 ||
		! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1; then
		tail -n 20 "$apt_log" | sed "s/^/$LOG_PREFIX   | /" >&2
		rm -f "$apt_log"
		die "apt-get could not install: ${missing[*]}"
	fi
	rm -f "$apt_log"
}

# Runs a build step, logging its output to $BUILD_LOG (or streaming it).
run_step() {
	local what="$1" rc=0
	shift
	log "$what"
	if [[ "${RTCCDN_VERBOSE:-0}" == 1 ]]; then
		"$@" 2>&1 | tee -a "$BUILD_LOG" || rc=$?
	else
		"$@" >>"$BUILD_LOG" 2>&1 || rc=$?
	fi
	if [[ "$rc" -ne 0 ]]; then
		tail -n 40 "$BUILD_LOG" | sed "s/^/$LOG_PREFIX   | /" >&2
		if mkdir -p "$CACHE_ROOT" 2>/dev/null; then cp -f "$BUILD_LOG" "$CACHE_ROOT/last-build.log" 2>/dev/null || true; fi
		die "$what failed (full log: $CACHE_ROOT/last-build.log)"
	fi
}

BUILD_ROOT=''
cleanup() {
	if [[ -n "$BUILD_ROOT" && -d "$BUILD_ROOT" ]]; then
		if [[ "${RTCCDN_KEEP_BUILD_DIR:-0}" == 1 ]]; then
			log "kept build directory $BUILD_ROOT"
		else
			rm -rf "$BUILD_ROOT"
		fi
	fi
	rm -f "$TARGET.tmp.$$" "$STAMP.tmp.$$"
}
trap cleanup EXIT

build_worker() {
	local src wrap name dir required installed jobs shim unshimmed p
	BUILD_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/rtccdn-mediasoup-worker.XXXXXX")"
	BUILD_LOG="$BUILD_ROOT/build.log"
	src="$BUILD_ROOT/worker"
	log "building mediasoup $MS_VERSION worker in $BUILD_ROOT"

	# Scratch copy of the worker sources: node_modules stays untouched.
	cp -a "$MS_DIR/worker" "$src"
	rm -rf "$src/out"

	# Source fixes the upstream tarball needs against Debian's libraries (each
	# patch explains itself). A patch that no longer applies fails the build.
	for p in "$PATCH_DIR"/*.patch; do
		[[ -e "$p" ]] || continue
		patch -d "$src" -p1 --forward --silent <"$p" || die "patch $(basename "$p") does not apply to mediasoup $MS_VERSION"
		log "applied $(basename "$p")"
	done

	# Put one shim per meson subproject where its .wrap expects the sources,
	# so meson uses it and never downloads anything.
	for wrap in "$src"/subprojects/*.wrap; do
		name="$(basename "$wrap" .wrap)"
		dir="$(sed -n 's/^[[:space:]]*directory[[:space:]]*=[[:space:]]*//p' "$wrap" | tr -d '[:space:]')"
		dir="${dir:-$name}"
		shim="$SHIM_DIR/$name"
		if [[ -d "$shim" ]]; then
			rm -rf "$src/subprojects/$dir"
			cp -a "$shim" "$src/subprojects/$dir"
		else
			unshimmed=1
			for p in "${UNSHIMMED_OK[@]}"; do [[ "$p" == "$name" ]] && unshimmed=0; done
			[[ "$unshimmed" == 0 ]] || die "mediasoup $MS_VERSION needs subproject '$name' which has no shim in $SHIM_DIR"
		fi
	done

	# Debian bookworm has meson 1.0.1; mediasoup asks for >= 1.1.0 but builds
	# fine with 1.0.1. Relax the guard in the scratch copy only.
	installed="$(meson --version)"
	required="$(sed -n "s/.*meson_version[[:space:]]*:[[:space:]]*'>=[[:space:]]*\([0-9.]*\)'.*/\1/p" "$src/meson.build" | head -n1)"
	if [[ -n "$required" && "$required" != "$installed" &&
		"$(printf '%s\n%s\n' "$installed" "$required" | sort -V | head -n1)" == "$installed" ]]; then
		log "relaxing meson_version '>= $required' to '>= $installed' (Debian meson)"
		sed -i "s/\(meson_version[[:space:]]*:[[:space:]]*'>=[[:space:]]*\)$required'/\1$installed'/" "$src/meson.build"
	fi

	jobs="${RTCCDN_BUILD_JOBS:-$(nproc)}"
	run_step "meson setup (release, offline)" \
		meson setup --buildtype=release -Db_ndebug=true --wrap-mode=nodownload \
		"$BUILD_ROOT/build" "$src"
	# meson compile drives ninja and resolves target names (the generator's
	# ninja target is its output path, fbs/FBS). Generated headers first.
	run_step "ninja: flatbuffers-generator" \
		meson compile -C "$BUILD_ROOT/build" -j "$jobs" flatbuffers-generator
	run_step "ninja: mediasoup-worker (-j $jobs, takes a few minutes)" \
		meson compile -C "$BUILD_ROOT/build" -j "$jobs" mediasoup-worker

	[[ -x "$BUILD_ROOT/build/mediasoup-worker" ]] || die "build finished without a mediasoup-worker binary"
	log "verifying the new build"
	install_candidate "$BUILD_ROOT/build/mediasoup-worker" || die "freshly built worker failed verification"
}

# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

START_NS="$(date +%s%N)"
elapsed() { printf '%d.%03ds' $((($(date +%s%N) - START_NS) / 1000000000)) $(((($(date +%s%N) - START_NS) / 1000000) % 1000)); }

compute_key

if [[ "$FORCE" == 0 ]] && check_installed; then
	log "up to date: $TARGET (key $KEY, $(elapsed))"
	exit 0
fi

# Serialise concurrent runs (shared cache and node_modules).
mkdir -p "$CACHE_ROOT"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE_ROOT/.lock"
	flock 9
	# Another run may have finished while we waited.
	if [[ "$FORCE" == 0 ]] && stamp_matches && smoke_test "$TARGET"; then
		log "up to date: $TARGET (key $KEY, $(elapsed))"
		exit 0
	fi
fi

if [[ "$FORCE" == 0 ]] && restore_from_cache; then
	log "verified: restored from cache (key $KEY, $(elapsed))"
	exit 0
fi

ensure_packages
# Package versions may have changed: recompute the key and try the cache again.
old_key="$KEY"
compute_key
if [[ "$KEY" != "$old_key" && "$FORCE" == 0 ]] && restore_from_cache; then
	log "verified: restored from cache (key $KEY, $(elapsed))"
	exit 0
fi

[[ "$FORCE" == 0 ]] || log "--force: rebuilding"
build_worker
store_in_cache
log "verified: built and installed $TARGET (key $KEY, $(elapsed))"
