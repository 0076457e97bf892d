package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
)

// sessions maps the session handles clients hold to device sessions.
//
// The device numbers its sessions 1, 2, 3...; a client could use another
// client's logged-in session by guessing the next number. The wire handle is
// therefore a random 64-bit value, and only the node knows which device
// session it names. The table also tracks when each session was last used
// (to close idle ones) and which session objects it created (for the
// HsmKeysSessionOccupied metric).
//
// A session belongs to the connection that opened it (and so to the client
// certificate that connection presented): from any other connection its
// handle is CKR_SESSION_HANDLE_INVALID, and it is closed when its connection
// ends. Sessions are counted per connection and per client address
// (quotas), and sessions not logged in ("anonymous") are counted apart:
// they have tighter quotas, may not take the headroom kept for connections
// that have logged in, and are closed anonTTL after they were opened or
// logged out, whether used or not.
type sessions struct {
	idle    time.Duration
	anonTTL time.Duration
	max     int
	q       sessionQuotas
	now     func() time.Time

	// mu guards the maps, anon and every clientSession's fields. A session
	// with busy > 0 is in use by an RPC and is never reaped; one whose
	// connection ended while it was busy is closed by its last release.
	// Invariant: byConn and byAddr count exactly the sessions of byHandle.
	mu       sync.Mutex
	byHandle map[uint64]*clientSession
	byConn   map[uint64]*sessionCount
	byAddr   map[addrKey]*sessionCount
	anon     int // sessions of byHandle not logged in
}

// sessionQuotas are the per-connection and per-address bounds
// (ClientLimits), and anonMax, the most anonymous sessions the node holds:
// three quarters of its maximum, the rest kept for connections that have
// logged in.
type sessionQuotas struct {
	perConn, perAddr, anonPerConn, anonPerAddr, anonMax int
}

func quotasOf(l ClientLimits, maxSessions int) sessionQuotas {
	return sessionQuotas{
		perConn: l.MaxSessionsPerConnection, perAddr: l.MaxSessionsPerAddress,
		anonPerConn: l.MaxAnonymousSessionsPerConnection, anonPerAddr: l.MaxAnonymousSessionsPerAddress,
		anonMax: maxSessions - maxSessions/4,
	}
}

// sessionCount counts the sessions of one connection or address.
type sessionCount struct {
	total, anon int
	handles     map[uint64]struct{} // of a connection only
}

type clientSession struct {
	handle    uint64
	dev       hsm.SessionID
	device    *hsm.Device // that opened it
	conn      uint64      // connInfo.id of the connection that opened it
	addr      addrKey
	cert      [sha256.Size]byte // that connection's client certificate digest
	lastUsed  time.Time
	loggedIn  bool
	anonSince time.Time // when it was opened or last logged out
	busy      int
	closing   bool                      // its connection ended while it was busy
	objects   map[hsm.ObjectID]struct{} // session objects it created
}

func newSessions(idle, anonTTL time.Duration, max int, q sessionQuotas, now func() time.Time) *sessions {
	return &sessions{
		idle: idle, anonTTL: anonTTL, max: max, q: q, now: now,
		byHandle: map[uint64]*clientSession{}, byConn: map[uint64]*sessionCount{}, byAddr: map[addrKey]*sessionCount{},
	}
}

// open registers a new device session under a fresh handle, bound to conn.
func (t *sessions) open(dev *hsm.Device, conn *connInfo) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cc, ac := t.byConn[conn.id], t.byAddr[conn.addr]
	if cc == nil {
		cc = &sessionCount{}
	}
	if ac == nil {
		ac = &sessionCount{}
	}
	switch {
	case len(t.byHandle) >= t.max:
		return 0, refusal(ck.CKR_SESSION_COUNT, "node has %d open sessions, its limit", len(t.byHandle))
	case cc.total >= t.q.perConn:
		return 0, refusal(ck.CKR_SESSION_COUNT, "connection has %d open sessions, its limit", cc.total)
	case ac.total >= t.q.perAddr:
		return 0, refusal(ck.CKR_SESSION_COUNT, "client %s has %d open sessions, its limit", conn.addr, ac.total)
	}
	if cc.total == cc.anon { // no session of this connection is logged in
		const hint = "; log in on the open sessions or close some"
		switch {
		case cc.anon >= t.q.anonPerConn:
			return 0, refusal(ck.CKR_SESSION_COUNT, "connection has %d sessions not logged in, its limit%s", cc.anon, hint)
		case ac.anon >= t.q.anonPerAddr:
			return 0, refusal(ck.CKR_SESSION_COUNT, "client %s has %d sessions not logged in, its limit%s", conn.addr, ac.anon, hint)
		case t.anon >= t.q.anonMax:
			return 0, refusal(ck.CKR_SESSION_COUNT, "node has %d sessions not logged in, its limit for them (the rest is kept for logged-in connections)", t.anon)
		}
	}
	var h uint64
	for h == 0 || t.byHandle[h] != nil {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand)
		h = binary.LittleEndian.Uint64(b[:])
	}
	now := t.now()
	s := &clientSession{
		handle: h, dev: dev.OpenSession(), device: dev, conn: conn.id, addr: conn.addr, cert: conn.cert,
		lastUsed: now, anonSince: now, objects: map[hsm.ObjectID]struct{}{},
	}
	t.byHandle[h] = s
	if cc.handles == nil {
		cc.handles = map[uint64]struct{}{}
	}
	cc.handles[h] = struct{}{}
	t.byConn[conn.id], t.byAddr[conn.addr] = cc, ac
	t.add(s, 1)
	return h, nil
}

// add counts s (d = 1) or stops counting it (d = -1); the caller holds mu
// and, for d = -1, has deleted s from byHandle.
func (t *sessions) add(s *clientSession, d int) {
	anon := 0
	if !s.loggedIn {
		anon = d
	}
	t.anon += anon
	cc, ac := t.byConn[s.conn], t.byAddr[s.addr]
	cc.total, cc.anon = cc.total+d, cc.anon+anon
	ac.total, ac.anon = ac.total+d, ac.anon+anon
	if d < 0 {
		delete(cc.handles, s.handle)
		if cc.total == 0 {
			delete(t.byConn, s.conn)
		}
		if ac.total == 0 {
			delete(t.byAddr, s.addr)
		}
	}
}

// owns reports whether handle names a session that conn opened.
func (t *sessions) owns(handle uint64, conn *connInfo) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byHandle[handle]
	return s != nil && s.conn == conn.id && s.cert == conn.cert
}

// loggedIn reports whether handle names a session that is logged in.
func (t *sessions) loggedIn(handle uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byHandle[handle]
	return s != nil && s.loggedIn
}

// setLoggedIn records that s logged in (or out): a session not logged in
// is anonymous from now on.
func (t *sessions) setLoggedIn(s *clientSession, in bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.loggedIn == in {
		return
	}
	s.loggedIn = in
	d := -1
	if !in {
		d, s.anonSince = 1, t.now()
	}
	if t.byHandle[s.handle] == s { // still counted
		t.anon += d
		t.byConn[s.conn].anon += d
		t.byAddr[s.addr].anon += d
	}
}

// acquire finds a session for one RPC and marks it busy until release.
// (The server checked that the RPC's connection owns it: bindSession.)
func (t *sessions) acquire(handle uint64) (*clientSession, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byHandle[handle]
	if s == nil {
		return nil, refusal(ck.CKR_SESSION_HANDLE_INVALID, "no such session")
	}
	s.busy++
	s.lastUsed = t.now()
	return s, nil
}

func (t *sessions) release(s *clientSession) {
	t.mu.Lock()
	s.busy--
	s.lastUsed = t.now()
	closeNow := s.closing && s.busy == 0
	t.mu.Unlock()
	if closeNow {
		s.device.CloseSession(s.dev) // only fails for an unknown session
	}
}

// remove takes a session out of the table; the caller closes it on the
// device. It reports false if the handle is unknown.
func (t *sessions) remove(handle uint64) (*clientSession, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byHandle[handle]
	if s == nil {
		return nil, false
	}
	delete(t.byHandle, handle)
	t.add(s, -1)
	return s, true
}

// closeConn closes the sessions of a connection that ended (those in use
// when their RPC ends) and returns how many there were.
func (t *sessions) closeConn(conn uint64) int {
	var now []*clientSession
	t.mu.Lock()
	cc := t.byConn[conn]
	k := 0
	if cc != nil {
		for h := range cc.handles {
			s := t.byHandle[h]
			delete(t.byHandle, h)
			t.add(s, -1)
			k++
			if s.busy > 0 {
				s.closing = true
			} else {
				now = append(now, s)
			}
		}
	}
	t.mu.Unlock()
	for _, s := range now {
		s.device.CloseSession(s.dev)
	}
	return k
}

// addObjects records the session objects a session created.
func (t *sessions) addObjects(s *clientSession, ids ...hsm.ObjectID) {
	t.mu.Lock()
	for _, id := range ids {
		s.objects[id] = struct{}{}
	}
	t.mu.Unlock()
}

// dropObject forgets a destroyed object.
func (t *sessions) dropObject(s *clientSession, id hsm.ObjectID) {
	t.mu.Lock()
	delete(s.objects, id)
	t.mu.Unlock()
}

// counts returns the open sessions and their session objects.
func (t *sessions) counts() (sessions, objects int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.byHandle {
		objects += len(s.objects)
	}
	return len(t.byHandle), objects
}

// reap closes every session idle for longer than the idle timeout, and
// every one not logged in for longer than anonTTL, and returns how many it
// closed.
func (t *sessions) reap(dev *hsm.Device) int {
	now := t.now()
	var stale []*clientSession
	t.mu.Lock()
	for h, s := range t.byHandle {
		if s.busy == 0 && (now.Sub(s.lastUsed) > t.idle || !s.loggedIn && now.Sub(s.anonSince) > t.anonTTL) {
			stale = append(stale, s)
			delete(t.byHandle, h)
			t.add(s, -1)
		}
	}
	t.mu.Unlock()
	for _, s := range stale {
		dev.CloseSession(s.dev) // only fails for an unknown session
	}
	return len(stale)
}

// closeAll forgets every session (at shutdown).
func (t *sessions) closeAll(dev *hsm.Device) {
	t.mu.Lock()
	all := t.byHandle
	t.byHandle, t.byConn, t.byAddr, t.anon = map[uint64]*clientSession{}, map[uint64]*sessionCount{}, map[addrKey]*sessionCount{}, 0
	t.mu.Unlock()
	for _, s := range all {
		dev.CloseSession(s.dev)
	}
}

// reapLoop closes idle sessions until ctx ends.
func (n *Node) reapLoop(ctx context.Context) error {
	every := min(max(min(n.cfg.SessionIdleTimeout, n.cfg.Limits.AnonymousSessionTimeout)/4, 250*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if dev := n.dev.Load(); dev != nil {
				if k := n.sessions.reap(dev); k > 0 {
					n.log.Info("closed idle sessions", "count", k, "idle_timeout", n.cfg.SessionIdleTimeout)
				}
			}
		}
	}
}
