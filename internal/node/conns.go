package node

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
)

// This file: who a call comes from. Every accepted connection gets an id
// (never reused in the process), its client address and the digest of the
// client certificate chain it presented; sessions are bound to them
// (sessions.go) and logins are limited per address (logins.go). A
// listener wrapper bounds the connections of one address.

// addrKey is a client address as the limits count it: an IPv4 address, or
// the /64 of an IPv6 address (a host is usually given a whole /64, so
// counting single IPv6 addresses would give it 2^64 budgets). The zero
// value stands for an address that could not be read.
type addrKey netip.Prefix

func keyOf(a net.Addr) addrKey {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if a == nil {
			return addrKey{}
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return addrKey{}
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return addrKey{}
	}
	return addrKey(p)
}

func (k addrKey) String() string {
	p := netip.Prefix(k)
	switch {
	case !p.IsValid():
		return "unknown address"
	case p.Addr().Is4():
		return p.Addr().String()
	}
	return p.String()
}

// connInfo is what the node knows of one client connection.
type connInfo struct {
	id   uint64
	addr addrKey
	cert [sha256.Size]byte // digest of the client certificate chain; zero: none
}

type connInfoKey struct{}

// connOf is the connection the RPC of ctx came on (ok false outside a
// connection the node's stats handler tagged).
func connOf(ctx context.Context) (*connInfo, bool) {
	c, ok := ctx.Value(connInfoKey{}).(*connInfo)
	return c, ok
}

// peerChain is the certificate chain a TLS peer presented (nil if none).
func peerChain(p *peer.Peer) []*x509.Certificate {
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return info.State.PeerCertificates
}

// connTagger is the server's stats.Handler: it tags each connection with a
// connInfo and, when the connection ends, closes the sessions opened on it.
type connTagger struct {
	n    *Node
	next atomic.Uint64
}

func (t *connTagger) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	c := &connInfo{id: t.next.Add(1), addr: keyOf(info.RemoteAddr)}
	if p, ok := peer.FromContext(ctx); ok {
		if chain := peerChain(p); len(chain) > 0 {
			c.cert, _ = chainKey(chain)
		}
	}
	return context.WithValue(ctx, connInfoKey{}, c)
}

func (t *connTagger) HandleConn(ctx context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnEnd); !ok {
		return
	}
	if c, ok := connOf(ctx); ok {
		if k := t.n.sessions.closeConn(c.id); k > 0 {
			t.n.log.Debug("closed the sessions of a closed connection", "count", k, "client", c.addr)
		}
	}
}

func (*connTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (*connTagger) HandleRPC(context.Context, stats.RPCStats)                       {}

// connLimiter is the node's listener, closing at once (before any TLS
// work) a connection whose address already has max open.
type connLimiter struct {
	net.Listener
	max int
	log func(addr addrKey)

	mu    sync.Mutex // guards open
	open  map[addrKey]int
	lastL time.Time // last refusal logged (at most one a second)
}

func newConnLimiter(ln net.Listener, max int, log func(addrKey)) *connLimiter {
	return &connLimiter{Listener: ln, max: max, log: log, open: map[addrKey]int{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		k := keyOf(c.RemoteAddr())
		l.mu.Lock()
		ok := l.open[k] < l.max
		if ok {
			l.open[k]++
		}
		logIt := !ok && time.Since(l.lastL) >= time.Second
		if logIt {
			l.lastL = time.Now()
		}
		l.mu.Unlock()
		if !ok {
			c.Close()
			if logIt {
				l.log(k)
			}
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(k) }}, nil
	}
}

func (l *connLimiter) release(k addrKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k]--; l.open[k] <= 0 {
		delete(l.open, k)
	}
}

// limitedConn gives its address's slot back when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
