package main

// `rtcload publish`: a constant-bitrate WHIP publisher. It sends frames encoded once by FFmpeg
// (an IVF file of VP8, or an Annex-B H.264 file with access unit delimiters) at their frame rate,
// looping, plus Opus silence every 20 ms — no encoder, so the source keeps its bitrate however
// loaded the machine is (it ignores PLIs and REMB: the files carry a key frame every second).
// -count N publishes N streams (<stream>-0 … <stream>-(N-1)) from one process, each its own
// peer connection, spread evenly over the frame interval.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/srtp/v3"
)

// readIVF returns the frames of an IVF file (32-byte header, then 12-byte frame headers).
func readIVF(data []byte) ([][]byte, error) {
	if len(data) < 32 || string(data[:4]) != "DKIF" {
		return nil, errors.New("not an IVF file")
	}
	headerLen := int(binary.LittleEndian.Uint16(data[6:8]))
	var frames [][]byte
	for at := headerLen; at+12 <= len(data); {
		size := int(binary.LittleEndian.Uint32(data[at : at+4]))
		at += 12
		if at+size > len(data) {
			break
		}
		frames = append(frames, data[at:at+size])
		at += size
	}
	return frames, nil
}

// readAnnexB splits an H.264 Annex-B stream into access units at its AUD NAL units (type 9).
func readAnnexB(data []byte) ([][]byte, error) {
	var starts []int
	for i := 0; i+4 < len(data); i++ {
		if data[i] == 0 && data[i+1] == 0 {
			hdr := -1
			if data[i+2] == 1 {
				hdr = i + 3
			} else if data[i+2] == 0 && data[i+3] == 1 {
				hdr = i + 4
			}
			if hdr >= 0 && hdr < len(data) && data[hdr]&0x1f == 9 {
				starts = append(starts, i)
			}
			if hdr >= 0 {
				i = hdr - 1
			}
		}
	}
	if len(starts) == 0 {
		return nil, errors.New("no access unit delimiters (encode with -x264-params aud=1)")
	}
	frames := make([][]byte, 0, len(starts))
	for k, s := range starts {
		end := len(data)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		frames = append(frames, data[s:end])
	}
	return frames, nil
}

type pubStream struct {
	name     string
	p        *peer
	location string
	ctx      *srtp.Context
	video    rtp.Packetizer
	audio    rtp.Packetizer
	mu       sync.Mutex // one writer at a time on ctx (video and audio goroutines)
	buf      []byte
	bytes    atomic.Int64
	packets  atomic.Int64
	rtcp     atomic.Int64
	plis     atomic.Int64
	failed   string
}

func (s *pubStream) onMedia(b []byte, _ time.Time) {
	if len(b) >= 2 && b[1] >= 192 && b[1] <= 223 {
		s.rtcp.Add(1)
		if b[1] == 206 && b[0]&0x1f == 1 {
			s.plis.Add(1)
		}
	}
}

func (s *pubStream) send(pkts []*rtp.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pkt := range pkts {
		raw, err := pkt.Marshal()
		if err != nil {
			continue
		}
		out, err := s.ctx.EncryptRTP(s.buf[:0], raw, nil)
		if err != nil {
			continue
		}
		s.buf = out[:cap(out)]
		if _, err := s.p.conn.WriteToUDP(out, s.p.remote.addr); err == nil {
			s.bytes.Add(int64(len(out)))
			s.packets.Add(1)
		}
	}
}

func publisherOffer(p *peer, codec string, videoSSRC, audioSSRC uint32, audio bool) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- " + strconv.FormatInt(time.Now().UnixNano(), 10) + " 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
	if audio {
		b.WriteString("a=group:BUNDLE 0 1\r\n")
	} else {
		b.WriteString("a=group:BUNDLE 0\r\n")
	}
	b.WriteString("a=msid-semantic: WMS rtcload\r\n")
	pt := "96"
	if codec == "h264" {
		pt = "106"
	}
	b.WriteString("m=video 9 UDP/TLS/RTP/SAVPF " + pt + "\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
	b.WriteString(p.offerTransport())
	b.WriteString("a=mid:0\r\na=sendonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=msid:rtcload video\r\n")
	if codec == "h264" {
		b.WriteString("a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n")
	} else {
		b.WriteString("a=rtpmap:96 VP8/90000\r\n")
	}
	b.WriteString("a=rtcp-fb:" + pt + " nack\r\na=rtcp-fb:" + pt + " nack pli\r\n")
	b.WriteString(fmt.Sprintf("a=ssrc:%d cname:rtcload\r\na=ssrc:%d msid:rtcload video\r\n", videoSSRC, videoSSRC))
	if audio {
		b.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
		b.WriteString(p.offerTransport())
		b.WriteString("a=mid:1\r\na=sendonly\r\na=rtcp-mux\r\na=msid:rtcload audio\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n")
		b.WriteString(fmt.Sprintf("a=ssrc:%d cname:rtcload\r\na=ssrc:%d msid:rtcload audio\r\n", audioSSRC, audioSSRC))
	}
	return b.String()
}

// srtpContext derives our (the DTLS client's) SRTP context from the handshake (RFC 5764 4.2).
func srtpContext(conn *dtls.Conn) (*srtp.Context, error) {
	selected, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, errors.New("no SRTP protection profile negotiated")
	}
	var profile srtp.ProtectionProfile
	switch selected {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, fmt.Errorf("unexpected SRTP profile %v", selected)
	}
	keyLen, _ := profile.KeyLen()
	saltLen, _ := profile.SaltLen()
	state, ok := conn.ConnectionState()
	if !ok {
		return nil, errors.New("no DTLS state")
	}
	keys, err := state.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 2*(keyLen+saltLen))
	if err != nil {
		return nil, err
	}
	return srtp.CreateContext(keys[:keyLen], keys[2*keyLen:2*keyLen+saltLen], profile)
}

func runPublish(args []string) error {
	fs := flag.NewFlagSet("publish", flag.ExitOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "node base URL")
	stream := fs.String("stream", "bench", "stream name (with -count > 1: the prefix of <stream>-i)")
	count := fs.Int("count", 1, "streams to publish")
	file := fs.String("file", "", "IVF (VP8) or Annex-B .h264 file")
	codec := fs.String("codec", "vp8", "vp8 or h264")
	fps := fs.Float64("fps", 30, "frame rate of the file")
	audio := fs.Bool("audio", true, "send Opus silence too")
	duration := fs.Duration("duration", 0, "stop after this long (0: on SIGTERM/SIGINT or when stdin closes)")
	token := fs.String("token", "", "publish token (Authorization: Bearer)")
	concurrency := fs.Int("concurrency", 8, "WHIP sessions set up at once")
	_ = fs.Parse(args)

	data, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var frames [][]byte
	if *codec == "h264" {
		frames, err = readAnnexB(data)
	} else {
		frames, err = readIVF(data)
	}
	if err != nil {
		return err
	}
	var fileBytes int
	for _, f := range frames {
		fileBytes += len(f)
	}
	logf("%d frames, %.0f kbit/s of %s payload at %.0f fps", len(frames), float64(fileBytes)*8/1000/(float64(len(frames)) / *fps), *codec, *fps)

	id, err := newIdentity()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	streams := make([]*pubStream, *count)
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, *concurrency))
	for i := range streams {
		name := *stream
		if *count > 1 {
			name = fmt.Sprintf("%s-%d", *stream, i)
		}
		s := &pubStream{name: name, buf: make([]byte, 1600)}
		streams[i] = s
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.setup(ctx, client, id, *url, *codec, *audio, *token); err != nil {
				s.failed = err.Error()
				logf("%s: %v", s.name, err)
			}
		}()
	}
	wg.Wait()
	up := 0
	for _, s := range streams {
		if s.failed == "" {
			up++
		}
	}
	emit(map[string]any{"event": "published", "streams": up, "failed": len(streams) - up})
	if up == 0 {
		return errors.New("no stream could be published")
	}

	frameDur := time.Duration(float64(time.Second) / *fps)
	start := time.Now()
	for i, s := range streams {
		if s.failed != "" {
			continue
		}
		offset := frameDur * time.Duration(i) / time.Duration(len(streams))
		go func() { // video: frame k at start + offset + k/fps
			for k := 0; ; k++ {
				at := start.Add(offset + time.Duration(k)*frameDur)
				if wait := time.Until(at); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				} else if ctx.Err() != nil {
					return
				}
				s.send(s.video.Packetize(frames[k%len(frames)], uint32(90000 / *fps)))
			}
		}()
		if *audio {
			go func() { // Opus: a 20 ms CELT silence frame (TOC 0xF8)
				silence := []byte{0xf8, 0xff, 0xfe}
				for k := 0; ; k++ {
					at := start.Add(offset + time.Duration(k)*20*time.Millisecond)
					if wait := time.Until(at); wait > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(wait):
						}
					} else if ctx.Err() != nil {
						return
					}
					s.send(s.audio.Packetize(silence, 960))
				}
			}()
		}
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	if *duration == 0 {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	}
	var deadline <-chan time.Time
	if *duration > 0 {
		deadline = time.After(*duration)
	}
	report := time.NewTicker(5 * time.Second)
	defer report.Stop()
	var lastBytes, lastPackets int64
	last := time.Now()
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-stdinClosed:
			break loop
		case <-deadline:
			break loop
		case <-report.C:
			var b, p, plis int64
			for _, s := range streams {
				b += s.bytes.Load()
				p += s.packets.Load()
				plis += s.plis.Load()
			}
			secs := time.Since(last).Seconds()
			emit(map[string]any{"event": "rate", "kbps": round1(float64(b-lastBytes) * 8 / 1000 / secs), "pps": int64(float64(p-lastPackets) / secs), "plis": plis})
			lastBytes, lastPackets, last = b, p, time.Now()
		}
	}
	cancel()
	for _, s := range streams {
		if s.location != "" {
			req, _ := http.NewRequest(http.MethodDelete, *url+s.location, nil)
			if *token != "" {
				req.Header.Set("Authorization", "Bearer "+*token)
			}
			if res, err := client.Do(req); err == nil {
				_ = res.Body.Close()
			}
		}
		if s.p != nil {
			s.p.close(false)
		}
	}
	emit(map[string]any{"event": "done"})
	return nil
}

func (s *pubStream) setup(ctx context.Context, client *http.Client, id *identity, url, codec string, audio bool, token string) error {
	p, err := newPeer(id)
	if err != nil {
		return err
	}
	s.p = p
	p.onMedia = s.onMedia
	videoSSRC, audioSSRC := rand.Uint32(), rand.Uint32()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/whip/"+s.name, bytes.NewReader([]byte(publisherOffer(p, codec, videoSSRC, audioSSRC, audio))))
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("WHIP %d: %s", res.StatusCode, strings.TrimSpace(string(body)))
	}
	s.location = res.Header.Get("Location")
	info, err := parseAnswer(string(body))
	if err != nil {
		return err
	}
	hs, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, _, err := p.start(hs, info, viewerProfiles); err != nil {
		return err
	}
	if s.ctx, err = srtpContext(p.dtls); err != nil {
		return err
	}
	var payloader rtp.Payloader = &codecs.VP8Payloader{EnablePictureID: true}
	pt := uint8(96)
	if codec == "h264" {
		payloader = &codecs.H264Payloader{}
		pt = 106
	}
	s.video = rtp.NewPacketizer(1200, pt, videoSSRC, payloader, rtp.NewRandomSequencer(), 90000)
	s.audio = rtp.NewPacketizer(1200, 111, audioSSRC, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	// Consent freshness: the node drops a transport that stops checking.
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.closed:
				return
			case <-t.C:
				p.sendCheck()
			}
		}
	}()
	return nil
}
