package main

// The ICE + DTLS half of a WebRTC peer, as lean as a load generator needs: one UDP socket per
// peer, ICE as the controlling agent against the node's ICE-lite server (binding requests with
// USE-CANDIDATE, then one every few seconds for consent freshness), DTLS as the client (pion's
// dtls over the demultiplexed socket). Everything after the handshake is handed to onMedia
// undecrypted: SRTP and SRTCP headers are in the clear.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/stun/v3"
)

// identity is the one certificate all peers of this process present (its fingerprint goes in
// every offer); generating one per peer would cost an ECDSA key each for nothing.
type identity struct {
	cert        tls.Certificate
	fingerprint string
}

func newIdentity() (*identity, error) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(cert.Certificate[0])
	hexed := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(hexed); i += 2 {
		parts = append(parts, hexed[i:i+2])
	}
	return &identity{cert: cert, fingerprint: strings.Join(parts, ":")}, nil
}

func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	for i := range buf {
		buf[i] = alphabet[int(buf[i])%len(alphabet)]
	}
	return string(buf)
}

// answerInfo is what a peer needs from the node's SDP answer.
type answerInfo struct {
	ufrag, pwd string
	addr       *net.UDPAddr
	// primary SSRC → kind ("audio"/"video"), from a=ssrc lines (the first SSRC of each section).
	ssrcKinds map[uint32]string
}

func parseAnswer(sdp string) (*answerInfo, error) {
	info := &answerInfo{ssrcKinds: map[uint32]string{}}
	kind := ""
	sectionHasSSRC := false
	for _, raw := range strings.Split(sdp, "\n") {
		line := strings.TrimRight(raw, "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			kind = strings.SplitN(line[2:], " ", 2)[0]
			sectionHasSSRC = false
		case strings.HasPrefix(line, "a=ice-ufrag:") && info.ufrag == "":
			info.ufrag = line[len("a=ice-ufrag:"):]
		case strings.HasPrefix(line, "a=ice-pwd:") && info.pwd == "":
			info.pwd = line[len("a=ice-pwd:"):]
		case strings.HasPrefix(line, "a=candidate:") && info.addr == nil:
			// foundation component transport priority ip port typ host
			f := strings.Fields(line[len("a=candidate:"):])
			if len(f) >= 6 && strings.EqualFold(f[2], "udp") {
				port, err := strconv.Atoi(f[5])
				if err == nil {
					info.addr = &net.UDPAddr{IP: net.ParseIP(f[4]), Port: port}
				}
			}
		case strings.HasPrefix(line, "a=ssrc:") && !sectionHasSSRC:
			f := strings.Fields(line[len("a=ssrc:"):])
			if v, err := strconv.ParseUint(f[0], 10, 32); err == nil {
				info.ssrcKinds[uint32(v)] = kind
				sectionHasSSRC = true
			}
		}
	}
	if info.ufrag == "" || info.pwd == "" || info.addr == nil {
		return nil, errors.New("answer lacks ice-ufrag, ice-pwd or a UDP candidate")
	}
	return info, nil
}

// peer is one ICE+DTLS association on its own UDP socket.
type peer struct {
	id         *identity
	conn       *net.UDPConn
	localUfrag string
	localPwd   string
	remote     *answerInfo
	tiebreaker uint64

	iceDone chan struct{}
	iceOnce sync.Once
	dtlsIn  chan []byte
	closed  chan struct{}
	closeMu sync.Once
	dtls    *dtls.Conn
	// onMedia gets every RTP/RTCP datagram after the handshake (and before, should the node send
	// early); the buffer is reused, so it must not be kept.
	onMedia    func(b []byte, now time.Time)
	readerDone chan struct{}
	stunSent   atomic.Int64
}

func newPeer(id *identity) (*peer, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(1 << 20)
	var tb [8]byte
	_, _ = rand.Read(tb[:])
	return &peer{
		id:         id,
		conn:       conn,
		localUfrag: randomToken(8),
		localPwd:   randomToken(24),
		tiebreaker: binary.BigEndian.Uint64(tb[:]),
		iceDone:    make(chan struct{}),
		dtlsIn:     make(chan []byte, 64),
		closed:     make(chan struct{}),
		readerDone: make(chan struct{}),
	}, nil
}

// offerTransport is the session-level ICE/DTLS part of an offer.
func (p *peer) offerTransport() string {
	return "a=ice-ufrag:" + p.localUfrag + "\r\n" +
		"a=ice-pwd:" + p.localPwd + "\r\n" +
		"a=fingerprint:sha-256 " + p.id.fingerprint + "\r\n" +
		"a=setup:active\r\n"
}

// start reads the socket (demultiplexing STUN / DTLS / media, RFC 7983), runs ICE until the
// node answers a check, then the DTLS handshake. It returns once DTLS is up.
func (p *peer) start(ctx context.Context, remote *answerInfo, profiles []dtls.SRTPProtectionProfile) (iceAt, dtlsAt time.Time, err error) {
	p.remote = remote
	go p.read()
	// ICE: a check every 50 ms until one is answered.
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	p.sendCheck()
wait:
	for {
		select {
		case <-p.iceDone:
			break wait
		case <-ticker.C:
			p.sendCheck()
		case <-ctx.Done():
			return iceAt, dtlsAt, fmt.Errorf("ice: %w", ctx.Err())
		}
	}
	iceAt = time.Now()
	dconn, err := dtls.Client(&dtlsPacketConn{p: p}, remote.addr, &dtls.Config{
		Certificates:           []tls.Certificate{p.id.cert},
		InsecureSkipVerify:     true,
		SRTPProtectionProfiles: profiles,
		ExtendedMasterSecret:   dtls.RequireExtendedMasterSecret,
		FlightInterval:         100 * time.Millisecond,
	})
	if err != nil {
		return iceAt, dtlsAt, fmt.Errorf("dtls: %w", err)
	}
	if err := dconn.HandshakeContext(ctx); err != nil {
		return iceAt, dtlsAt, fmt.Errorf("dtls handshake: %w", err)
	}
	p.dtls = dconn
	return iceAt, time.Now(), nil
}

func (p *peer) sendCheck() {
	var prio [4]byte
	binary.BigEndian.PutUint32(prio[:], 0x6e7f1eff)
	var tb [8]byte
	binary.BigEndian.PutUint64(tb[:], p.tiebreaker)
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(p.remote.ufrag+":"+p.localUfrag),
		stun.RawAttribute{Type: stun.AttrPriority, Value: prio[:]},
		stun.RawAttribute{Type: stun.AttrICEControlling, Value: tb[:]},
		stun.RawAttribute{Type: stun.AttrUseCandidate},
		stun.NewShortTermIntegrity(p.remote.pwd),
		stun.Fingerprint,
	)
	if err != nil {
		return
	}
	p.stunSent.Add(1)
	_, _ = p.conn.WriteToUDP(m.Raw, p.remote.addr)
}

func (p *peer) read() {
	defer close(p.readerDone)
	buf := make([]byte, 1500)
	for {
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		b := buf[:n]
		switch first := b[0]; {
		case first >= 128 && first <= 191:
			if p.onMedia != nil {
				p.onMedia(b, time.Now())
			}
		case first <= 3:
			m := &stun.Message{Raw: append([]byte(nil), b...)}
			if m.Decode() == nil && m.Type == stun.BindingSuccess {
				p.iceOnce.Do(func() { close(p.iceDone) })
			}
		case first >= 20 && first <= 63:
			select {
			case p.dtlsIn <- append([]byte(nil), b...):
			default: // the handshake is over or stuck: DTLS retransmits anyway
			}
		}
	}
}

// close ends the association without a DTLS close_notify (the node sees the viewer vanish, as
// with a tab closed) unless graceful, which sends one so the node tears the session down now.
func (p *peer) close(graceful bool) {
	p.closeMu.Do(func() {
		if graceful && p.dtls != nil {
			_ = p.dtls.Close()
		}
		close(p.closed)
		_ = p.conn.Close()
	})
}

// dtlsPacketConn gives pion's DTLS the DTLS records of the demultiplexed socket. A deadline
// set while a read is blocked wakes it (pion cancels its read loop that way).
type dtlsPacketConn struct {
	p        *peer
	mu       sync.Mutex
	deadline time.Time
	wake     chan struct{}
}

var errTimeout = &timeoutError{}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "i/o timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

func (c *dtlsPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		deadline, wake := c.deadline, c.wake
		c.mu.Unlock()
		var timeout <-chan time.Time
		if !deadline.IsZero() {
			wait := time.Until(deadline)
			if wait <= 0 {
				return 0, nil, errTimeout
			}
			timer := time.NewTimer(wait)
			timeout = timer.C
			defer timer.Stop()
		}
		select {
		case pkt := <-c.p.dtlsIn:
			return copy(b, pkt), c.p.remote.addr, nil
		case <-c.p.closed:
			return 0, nil, net.ErrClosed
		case <-timeout:
			return 0, nil, errTimeout
		case <-wake:
		}
	}
}

func (c *dtlsPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.p.closed:
		return 0, net.ErrClosed
	default:
	}
	return c.p.conn.WriteToUDP(b, c.p.remote.addr)
}

func (c *dtlsPacketConn) Close() error        { return nil }
func (c *dtlsPacketConn) LocalAddr() net.Addr { return c.p.conn.LocalAddr() }
func (c *dtlsPacketConn) SetDeadline(t time.Time) error {
	return c.SetReadDeadline(t)
}

func (c *dtlsPacketConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	if c.wake != nil {
		close(c.wake)
	}
	c.wake = make(chan struct{})
	c.mu.Unlock()
	return nil
}
func (c *dtlsPacketConn) SetWriteDeadline(time.Time) error { return nil }

// consentLoop sends one binding request per peer every interval, spread over the interval by a
// single goroutine (no timer per peer), until ctx ends.
func consentLoop(ctx context.Context, interval time.Duration, peers func() []*peer) {
	const slices = 20
	tick := time.NewTicker(interval / slices)
	defer tick.Stop()
	for slot := 0; ; slot = (slot + 1) % slices {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for i, p := range peers() {
			if i%slices == slot && p.remote != nil {
				select {
				case <-p.closed:
				default:
					p.sendCheck()
				}
			}
		}
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[rtcload] "+format+"\n", args...)
}
