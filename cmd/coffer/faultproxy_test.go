package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy is a TCP proxy put on the link between two HSMs. It listens on
// the target HSM's own IP address (so the HSM's certificate, whose IP SAN is
// that address, still verifies) at another port, and forwards to the HSM.
// Its mode injects faults:
//
//   - pass: bytes flow as they come;
//   - delay d: each proxyChunk is forwarded d after it arrived;
//   - cut: nothing flows, both ways, on open and new connections; the bytes
//     are held (read and kept, up to a bound) and delivered in order when the
//     link heals, as TCP would retransmit them after a short partition;
//   - drop: every open connection is closed and new ones are accepted and
//     closed at once (a refused connection, as the caller sees it).
//
// Each connection has a reader and a writer goroutine per direction; Close
// stops and waits for all of them.
type faultProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    proxyMode
	delay   time.Duration
	changed chan struct{} // closed (and replaced) at every mode change
	conns   map[*proxyConn]bool
	closed  bool

	wg sync.WaitGroup

	accepted atomic.Int64 // connections forwarded
	refused  atomic.Int64 // connections closed at once (drop)
	held     atomic.Int64 // bytes received while cut
}

type proxyMode int

const (
	modePass proxyMode = iota + 1
	modeDelay
	modeCut
	modeDrop
)

func (m proxyMode) String() string {
	return map[proxyMode]string{modePass: "pass", modeDelay: "delay", modeCut: "cut", modeDrop: "drop"}[m]
}

// proxyMaxHeld bounds the chunks one direction of a connection holds; the reader
// then stops reading, and the sender's TCP window closes.
const proxyMaxHeld = 1024

// newFaultProxy listens on ip (a free port) and forwards to target, in
// pass mode. It is closed at the end of the test.
func newFaultProxy(t testing.TB, ip, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, mode: modePass, changed: make(chan struct{}), conns: map[*proxyConn]bool{}}
	p.wg.Go(p.acceptLoop)
	t.Cleanup(p.Close)
	return p
}

// Addr is where callers connect instead of the target.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) Pass()                 { p.set(modePass, 0) }
func (p *faultProxy) Delay(d time.Duration) { p.set(modeDelay, d) }
func (p *faultProxy) Cut()                  { p.set(modeCut, 0) }
func (p *faultProxy) Drop()                 { p.set(modeDrop, 0) }

// Accepted, Refused and Held count connections forwarded, connections
// refused (drop) and bytes received while cut.
func (p *faultProxy) Accepted() int64 { return p.accepted.Load() }
func (p *faultProxy) Refused() int64  { return p.refused.Load() }
func (p *faultProxy) Held() int64     { return p.held.Load() }

func (p *faultProxy) set(m proxyMode, d time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, d
	close(p.changed)
	p.changed = make(chan struct{})
	var drop []*proxyConn
	if m == modeDrop {
		for pc := range p.conns {
			drop = append(drop, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range drop {
		pc.close()
	}
}

// state returns the mode, its delay and the channel closed at its next
// change.
func (p *faultProxy) state() (proxyMode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

// Close stops the proxy: the listener and every connection, and waits for
// its goroutines.
func (p *faultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, pc := range conns {
		pc.close()
	}
	p.wg.Wait()
}

func (p *faultProxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if m, _, _ := p.state(); m == modeDrop {
			p.refused.Add(1)
			c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// proxyConn is one forwarded connection.
type proxyConn struct {
	down, up  net.Conn // the caller's connection, the one to the target
	done      chan struct{}
	closeOnce sync.Once
}

func (pc *proxyConn) close() {
	pc.closeOnce.Do(func() {
		close(pc.done)
		pc.down.Close()
		pc.up.Close()
	})
}

// proxyChunk is bytes read from one side, with the time they arrived.
type proxyChunk struct {
	b  []byte
	at time.Time
}

func (p *faultProxy) serve(down net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		down.Close()
		return
	}
	pc := &proxyConn{down: down, up: up, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.close()
		return
	}
	p.conns[pc] = true
	p.mu.Unlock()
	p.accepted.Add(1)
	defer func() {
		pc.close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	var wg sync.WaitGroup
	for _, dir := range [][2]net.Conn{{down, up}, {up, down}} {
		ch := make(chan proxyChunk, proxyMaxHeld)
		wg.Go(func() { p.read(pc, dir[0], ch) })
		wg.Go(func() { p.write(pc, dir[1], ch) })
	}
	wg.Wait()
}

// read reads src into ch until src ends or the connection closes.
func (p *faultProxy) read(pc *proxyConn, src net.Conn, ch chan<- proxyChunk) {
	defer close(ch)
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			if m, _, _ := p.state(); m == modeCut {
				p.held.Add(int64(n))
			}
			select {
			case ch <- proxyChunk{b: buf[:n], at: time.Now()}:
			case <-pc.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// write forwards what read delivered to dst as the mode allows; when it
// ends it closes the connection (both ways).
func (p *faultProxy) write(pc *proxyConn, dst net.Conn, ch <-chan proxyChunk) {
	defer pc.close()
	for c := range ch {
		if !p.wait(pc, c.at) {
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

// wait blocks until the mode lets a proxyChunk that arrived at `at` through; it
// reports false if the connection closed.
func (p *faultProxy) wait(pc *proxyConn, at time.Time) bool {
	for {
		m, d, changed := p.state()
		switch m {
		case modePass:
			return true
		case modeDrop:
			return false
		case modeDelay:
			wait := time.Until(at.Add(d))
			if wait <= 0 {
				return true
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				return true
			case <-changed:
				t.Stop()
			case <-pc.done:
				t.Stop()
				return false
			}
		case modeCut:
			select {
			case <-changed:
			case <-pc.done:
				return false
			}
		}
	}
}

// TestFaultProxy checks each mode against an echo server.
func TestFaultProxy(t *testing.T) {
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var received atomic.Int64
	var echoes sync.WaitGroup
	t.Cleanup(func() { echoLn.Close(); echoes.Wait() })
	echoes.Go(func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			echoes.Go(func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					received.Add(int64(n))
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	p := newFaultProxy(t, "127.0.0.1", echoLn.Addr().String())
	conn := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	echo := func(c net.Conn, msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		c.SetReadDeadline(time.Now().Add(clusterWaitLimit))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, got, err)
		}
	}

	c1 := conn()
	echo(c1, "pass")
	p.Delay(20 * time.Millisecond)
	echo(c1, "delayed")

	p.Cut()
	before := received.Load()
	c2 := conn()
	for _, c := range []net.Conn{c1, c2} {
		if _, err := c.Write([]byte("held")); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, "the proxy holds both writes", func() error {
		if h := p.Held(); h != 8 {
			return errors.New("not yet")
		}
		return nil
	})
	if got := received.Load() - before; got != 0 {
		t.Fatalf("the echo server received %d bytes through a cut link", got)
	}
	p.Pass()
	for _, c := range []net.Conn{c1, c2} {
		got := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(clusterWaitLimit))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte("held")) {
			t.Fatalf("after healing: %q, %v", got, err)
		}
	}

	p.Drop()
	c1.SetReadDeadline(time.Now().Add(clusterWaitLimit))
	if _, err := c1.Read(make([]byte, 1)); err == nil {
		t.Fatal("an open connection survived drop")
	}
	c3 := conn()
	c3.SetReadDeadline(time.Now().Add(clusterWaitLimit))
	if _, err := c3.Read(make([]byte, 1)); err == nil {
		t.Fatal("a new connection was forwarded in drop mode")
	}
	if p.Refused() != 1 {
		t.Fatalf("refused %d connections, want 1", p.Refused())
	}
	p.Pass()
	echo(conn(), "healed")
}
