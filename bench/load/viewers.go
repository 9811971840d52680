package main

// `rtcload viewers`: many WHEP viewers that complete ICE and DTLS (so the node sends) and count
// RTP per SSRC without decrypting or decoding: packets, bytes, sequence gaps (loss), arrival gaps
// (a video gap over 500 ms is a freeze), and the time from the WHEP POST to the first packet.
//
// Viewers join in steps (-steps 50,150,300,500); after each step and a settle time it prints
// {"event":"steady"} and measures a window of -hold seconds, then prints {"event":"step"} with
// the window's numbers. One JSON object per stdout line; progress on stderr.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/dtls/v3"
)

const freezeGap = 500 * time.Millisecond

type track struct {
	ssrc    uint32
	video   bool
	packets atomic.Int64
	bytes   atomic.Int64
	// extended highest sequence number and the first one (expected = max - base + 1)
	baseSeq  int64
	maxSeq   atomic.Int64
	started  bool
	lastNs   int64
	freezes  atomic.Int64
	maxGapNs atomic.Int64
}

type viewer struct {
	index    int
	url      string
	stream   string
	location string
	p        *peer

	status     int
	retryAfter string
	attempts   int
	err        string
	failure    string // "", "http", "ice", "dtls", "answer"
	postAt     time.Time
	answerMs   float64
	iceMs      float64
	dtlsMs     float64
	connected  atomic.Bool
	firstNs    atomic.Int64 // first RTP of the video track (or any, for audio-only), unix ns
	firstAnyNs atomic.Int64 // first RTP of any track: media flows (video waits for a key frame)
	tracks     []*track
	rtcp       atomic.Int64
	unknown    atomic.Int64
}

func (v *viewer) onMedia(b []byte, now time.Time) {
	if len(b) < 12 {
		return
	}
	if pt := b[1]; pt >= 192 && pt <= 223 {
		v.rtcp.Add(1)
		return
	}
	ssrc := binary.BigEndian.Uint32(b[8:12])
	var t *track
	for _, candidate := range v.tracks {
		if candidate.ssrc == ssrc {
			t = candidate
			break
		}
	}
	if t == nil {
		v.unknown.Add(1)
		return
	}
	ns := now.UnixNano()
	v.firstAnyNs.CompareAndSwap(0, ns)
	if t.video || len(v.tracks) == 1 {
		v.firstNs.CompareAndSwap(0, ns)
	}
	seq := int64(binary.BigEndian.Uint16(b[2:4]))
	if !t.started {
		t.started = true
		t.baseSeq = seq
		t.maxSeq.Store(seq)
	} else {
		max := t.maxSeq.Load()
		if diff := int64(int16(uint16(seq) - uint16(max))); diff > 0 {
			t.maxSeq.Store(max + diff)
		}
		if gap := ns - t.lastNs; gap > int64(freezeGap) && t.video {
			t.freezes.Add(1)
			if gap > t.maxGapNs.Load() {
				t.maxGapNs.Store(gap)
			}
		}
	}
	t.lastNs = ns
	// Counted last: a snapshot that sees a packet also sees the sequence state it set.
	t.packets.Add(1)
	t.bytes.Add(int64(len(b)))
}

type counters struct{ packets, bytes, expected, freezes int64 }

func (v *viewer) snapshot() counters {
	var c counters
	for _, t := range v.tracks {
		c.packets += t.packets.Load()
		c.bytes += t.bytes.Load()
		if t.packets.Load() > 0 {
			c.expected += t.maxSeq.Load() - t.baseSeq + 1
		}
		c.freezes += t.freezes.Load()
	}
	return c
}

func viewerOffer(p *peer, audio bool) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- " + strconv.FormatInt(time.Now().UnixNano(), 10) + " 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
	if audio {
		b.WriteString("a=group:BUNDLE 0 1\r\n")
	} else {
		b.WriteString("a=group:BUNDLE 0\r\n")
	}
	b.WriteString("a=msid-semantic: WMS\r\n")
	// libwebrtc's numbering (the stream's default routers): VP8 96/rtx 97, H.264 42e01f 106/rtx 107.
	b.WriteString("m=video 9 UDP/TLS/RTP/SAVPF 96 97 106 107\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
	b.WriteString(p.offerTransport())
	b.WriteString("a=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n")
	b.WriteString("a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n")
	b.WriteString("a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n")
	b.WriteString("a=rtpmap:106 H264/90000\r\na=rtcp-fb:106 nack\r\na=rtcp-fb:106 nack pli\r\n")
	b.WriteString("a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n")
	b.WriteString("a=rtpmap:107 rtx/90000\r\na=fmtp:107 apt=106\r\n")
	if audio {
		b.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
		b.WriteString(p.offerTransport())
		b.WriteString("a=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n")
	}
	return b.String()
}

var viewerProfiles = []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}

// retryPatience is how long a retrying viewer keeps trying (from its first POST).
const retryPatience = 30 * time.Second

func (v *viewer) join(ctx context.Context, client *http.Client, id *identity, audio bool, bearer string, retry bool) {
	p, err := newPeer(id)
	if err != nil {
		v.failure = "socket"
		return
	}
	v.p = p
	p.onMedia = v.onMedia
	v.postAt = time.Now()
	offer := viewerOffer(p, audio)
	var body []byte
	var location string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, v.url+"/whep/"+v.stream, strings.NewReader(offer))
		req.Header.Set("Content-Type", "application/sdp")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		v.attempts++
		res, err := client.Do(req)
		if err != nil {
			v.failure = "http"
			v.err = err.Error()
			p.close(false)
			return
		}
		body, _ = io.ReadAll(res.Body)
		_ = res.Body.Close()
		v.status = res.StatusCode
		v.answerMs = ms(time.Since(v.postAt))
		if res.StatusCode == http.StatusCreated {
			location = res.Header.Get("Location")
			break
		}
		v.retryAfter = res.Header.Get("Retry-After")
		// A real player comes back after Retry-After (503/429), within its patience.
		wait, err := strconv.Atoi(v.retryAfter)
		if !retry || err != nil || (res.StatusCode != 503 && res.StatusCode != 429) ||
			time.Since(v.postAt)+time.Duration(wait)*time.Second > retryPatience {
			p.close(false)
			return
		}
		time.Sleep(time.Duration(wait) * time.Second)
	}
	v.location = location
	info, err := parseAnswer(string(body))
	if err != nil {
		v.failure = "answer"
		p.close(false)
		return
	}
	for ssrc, kind := range info.ssrcKinds {
		v.tracks = append(v.tracks, &track{ssrc: ssrc, video: kind == "video"})
	}
	hs, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	iceAt, dtlsAt, err := p.start(hs, info, viewerProfiles)
	if !iceAt.IsZero() {
		v.iceMs = ms(iceAt.Sub(v.postAt))
	}
	if err != nil {
		if iceAt.IsZero() {
			v.failure = "ice"
		} else {
			v.failure = "dtls"
		}
		p.close(false)
		return
	}
	v.dtlsMs = ms(dtlsAt.Sub(v.postAt))
	v.connected.Store(true)
}

func (v *viewer) leave(client *http.Client, del bool) {
	if v.p == nil {
		return
	}
	if del && v.location != "" {
		req, _ := http.NewRequest(http.MethodDelete, v.url+v.location, nil)
		if res, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
	}
	v.p.close(false)
}

// socketDrops sums the kernel's receive-buffer drop counters (/proc/net/udp, last column) of
// the given local UDP ports: datagrams the load generator itself was too slow to take.
func socketDrops(ports map[int]bool) int64 {
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return -1
	}
	var total int64
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 {
			continue
		}
		local := strings.Split(f[1], ":")
		if len(local) != 2 {
			continue
		}
		port, err := strconv.ParseInt(local[1], 16, 32)
		if err != nil || !ports[int(port)] {
			continue
		}
		if drops, err := strconv.ParseInt(f[len(f)-1], 10, 64); err == nil {
			total += drops
		}
	}
	return total
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func emit(value any) {
	line, _ := json.Marshal(value)
	os.Stdout.Write(append(line, '\n'))
}

func runViewers(args []string) error {
	fs := flag.NewFlagSet("viewers", flag.ExitOnError)
	urls := fs.String("url", "http://127.0.0.1:8080", "node base URL(s), comma-separated: viewer i joins url[i % n]")
	streams := fs.String("stream", "bench", "stream name(s), comma-separated: viewer i watches stream[i % n]")
	streamCount := fs.Int("stream-count", 0, "instead of -stream: watch <stream>-0 … <stream>-(n-1)")
	stepsFlag := fs.String("steps", "10", "viewer counts to reach in turn, e.g. 50,150,300,500")
	rate := fs.Float64("rate", 0, "joins per second within a step (0: as fast as -concurrency allows)")
	concurrency := fs.Int("concurrency", 16, "joins in flight at once when -rate is 0")
	settle := fs.Duration("settle", 3*time.Second, "wait after a step's joins before its window")
	hold := fs.Duration("hold", 10*time.Second, "measurement window per step")
	audio := fs.Bool("audio", true, "offer an audio section too")
	keepAlive := fs.Bool("keepalive", false, "reuse HTTP connections between joins (off: one TCP connection per viewer, like real viewers)")
	del := fs.Bool("delete", true, "end sessions with a WHEP DELETE at the end")
	bearer := fs.String("key", "", "viewer key (Authorization: Bearer)")
	retry := fs.Bool("retry", false, "on 503/429, come back after Retry-After (for up to 30 s from the first POST), as a player would")
	consent := fs.Duration("consent", 5*time.Second, "ICE consent check interval per viewer")
	_ = fs.Parse(args)

	var steps []int
	for _, s := range strings.Split(*stepsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -steps %q", *stepsFlag)
		}
		steps = append(steps, n)
	}
	urlList := strings.Split(*urls, ",")
	streamList := strings.Split(*streams, ",")
	if *streamCount > 0 {
		streamList = streamList[:0]
		for i := 0; i < *streamCount; i++ {
			streamList = append(streamList, fmt.Sprintf("%s-%d", strings.Split(*streams, ",")[0], i))
		}
	}
	id, err := newIdentity()
	if err != nil {
		return err
	}
	transport := &http.Transport{DisableKeepAlives: !*keepAlive, MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	var all []*viewer
	peers := func() []*peer {
		mu.Lock()
		defer mu.Unlock()
		out := make([]*peer, 0, len(all))
		for _, v := range all {
			if v.connected.Load() {
				out = append(out, v.p)
			}
		}
		return out
	}
	go consentLoop(ctx, *consent, peers)

	for _, target := range steps {
		mu.Lock()
		from := len(all)
		mu.Unlock()
		if target <= from {
			continue
		}
		stepStart := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, max(1, *concurrency))
		joined := make([]*viewer, 0, target-from)
		for i := from; i < target; i++ {
			v := &viewer{index: i, url: urlList[i%len(urlList)], stream: streamList[i%len(streamList)]}
			joined = append(joined, v)
			mu.Lock()
			all = append(all, v)
			mu.Unlock()
			if *rate > 0 {
				at := stepStart.Add(time.Duration(float64(i-from) / *rate * float64(time.Second)))
				time.Sleep(time.Until(at))
			} else {
				sem <- struct{}{}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				v.join(ctx, client, id, *audio, *bearer, *retry)
				if *rate <= 0 {
					<-sem
				}
			}()
		}
		wg.Wait()
		joinSeconds := time.Since(stepStart).Seconds()
		// Wait for first packets (bounded by settle) before the window.
		time.Sleep(*settle)
		mu.Lock()
		current := append([]*viewer(nil), all...)
		mu.Unlock()
		connected := 0
		for _, v := range current {
			if v.connected.Load() {
				connected++
			}
		}
		emit(map[string]any{"event": "steady", "target": target, "connected": connected})
		logf("step %d: %d/%d connected, window %s", target, connected, len(current), *hold)

		before := make([]counters, len(current))
		for i, v := range current {
			before[i] = v.snapshot()
		}
		ports := map[int]bool{}
		for _, v := range current {
			if v.p != nil {
				ports[v.p.conn.LocalAddr().(*net.UDPAddr).Port] = true
			}
		}
		drops0 := socketDrops(ports)
		cpu0 := cpuSeconds()
		t0 := time.Now()
		time.Sleep(*hold)
		window := time.Since(t0).Seconds()
		cpu1 := cpuSeconds()
		drops1 := socketDrops(ports)

		kbps := []float64{}
		lossPct := []float64{}
		var freezes, frozen, noMedia, totalBytes, totalPackets, lost, expected int64
		for i, v := range current {
			if !v.connected.Load() {
				continue
			}
			after := v.snapshot()
			d := counters{after.packets - before[i].packets, after.bytes - before[i].bytes, after.expected - before[i].expected, after.freezes - before[i].freezes}
			if d.packets == 0 {
				noMedia++
			}
			kbps = append(kbps, round1(float64(d.bytes)*8/1000/window))
			l := max(int64(0), d.expected-d.packets)
			lost += l
			expected += d.expected
			if d.expected > 0 {
				lossPct = append(lossPct, round1(float64(l)*100/float64(d.expected)))
			}
			freezes += d.freezes
			if d.freezes > 0 {
				frozen++
			}
			totalBytes += d.bytes
			totalPackets += d.packets
		}
		status := map[string]int{}
		failures := map[string]int{}
		errorsSeen := map[string]int{}
		retryAfter := map[string]int{}
		attempts := []float64{}
		answerMs, iceMs, dtlsMs, ttfpMs, ttfpAnyMs := []float64{}, []float64{}, []float64{}, []float64{}, []float64{}
		for _, v := range joined {
			if v.status != 0 {
				status[strconv.Itoa(v.status)]++
			}
			if v.failure != "" {
				failures[v.failure]++
			}
			if v.err != "" {
				msg := v.err
				if i := strings.LastIndex(msg, ": "); i >= 0 {
					msg = msg[i+2:]
				}
				errorsSeen[msg]++
			}
			if v.retryAfter != "" {
				retryAfter[v.retryAfter]++
			}
			attempts = append(attempts, float64(v.attempts))
			if v.status == http.StatusCreated {
				answerMs = append(answerMs, v.answerMs)
			}
			if v.connected.Load() {
				iceMs = append(iceMs, v.iceMs)
				dtlsMs = append(dtlsMs, v.dtlsMs)
				if first := v.firstNs.Load(); first != 0 {
					ttfpMs = append(ttfpMs, ms(time.Unix(0, first).Sub(v.postAt)))
				}
				if first := v.firstAnyNs.Load(); first != 0 {
					ttfpAnyMs = append(ttfpAnyMs, ms(time.Unix(0, first).Sub(v.postAt)))
				}
			}
		}
		overall := 0.0
		if expected > 0 {
			overall = round1(float64(lost) * 100 / float64(expected))
		}
		emit(map[string]any{
			"event": "step", "target": target, "joined": len(joined), "joinSeconds": round1(joinSeconds),
			"connected": len(kbps), "status": status, "failures": failures, "errors": errorsSeen, "retryAfter": retryAfter, "attempts": attempts,
			"answerMs": answerMs, "iceMs": iceMs, "dtlsMs": dtlsMs, "ttfpMs": ttfpMs, "ttfpAnyMs": ttfpAnyMs,
			"windowSeconds": round1(window), "kbps": kbps, "lossPct": lossPct, "lossPctOverall": overall,
			"freezes": freezes, "viewersFrozen": frozen, "viewersWithoutMedia": noMedia,
			"totalMbps":        round1(float64(totalBytes) * 8 / 1e6 / window),
			"packetsPerSecond": int64(float64(totalPackets) / window),
			"loadgenCores":     round3((cpu1 - cpu0) / window), "gomaxprocs": runtime.GOMAXPROCS(0),
			"loadgenSocketDrops": drops1 - drops0,
		})
	}
	cancel()
	mu.Lock()
	current := append([]*viewer(nil), all...)
	mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, v := range current {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			v.leave(client, *del)
			<-sem
		}()
	}
	wg.Wait()
	emit(map[string]any{"event": "done", "viewers": len(current)})
	return nil
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
