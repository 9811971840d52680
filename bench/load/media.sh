#!/usr/bin/env bash
# Encodes the constant-bitrate publisher's media once with FFmpeg and caches it: 10 s of a moving
# test pattern, 640x360@30, a key frame every 30 frames, CBR.
#   bench/load/media.sh vp8|h264 [kbit/s, default 1500]   → prints the file's path
#   cache: ${RTCCDN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn}/bench-media/
set -euo pipefail
CODEC="${1:?vp8 or h264}"
KBPS="${2:-1500}"
CACHE="${RTCCDN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn}/bench-media"
mkdir -p "$CACHE"
SRC=(-f lavfi -i "testsrc2=size=640x360:rate=30" -t 10 -pix_fmt yuv420p)
case "$CODEC" in
  vp8)
    OUT="$CACHE/cbr-${KBPS}k-640x360-30.ivf"
    [ -s "$OUT" ] || { ffmpeg -nostdin -loglevel error -y "${SRC[@]}" -c:v libvpx -b:v "${KBPS}k" -minrate "${KBPS}k" \
      -maxrate "${KBPS}k" -bufsize "$((KBPS / 2))k" -g 30 -keyint_min 30 -deadline realtime -cpu-used 8 \
      -error-resilient 1 -f ivf "$OUT.tmp" && mv "$OUT.tmp" "$OUT"; }
    ;;
  h264)
    OUT="$CACHE/cbr-${KBPS}k-640x360-30.h264"
    [ -s "$OUT" ] || { ffmpeg -nostdin -loglevel error -y "${SRC[@]}" -c:v libx264 -profile:v baseline -level 3.1 \
      -preset veryfast -tune zerolatency -b:v "${KBPS}k" -minrate "${KBPS}k" -maxrate "${KBPS}k" \
      -bufsize "$((KBPS / 2))k" -g 30 -keyint_min 30 -bf 0 -x264-params "nal-hrd=cbr:aud=1:repeat-headers=1" \
      -f h264 "$OUT.tmp" && mv "$OUT.tmp" "$OUT"; }
    ;;
  *) echo "unknown codec $CODEC (vp8 or h264)" >&2; exit 2 ;;
esac
echo "$OUT"
