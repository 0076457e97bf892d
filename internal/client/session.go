package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// maxSessionObjects bounds the session objects one Session tracks; creating
// more is refused with CKR_DEVICE_MEMORY.
const maxSessionObjects = 1 << 16

// Session is one logged-in user of the cluster: a node session on each HSM it
// has used, logged in once. It is safe for concurrent use.
type Session struct {
	c        *Cluster
	role     string
	username string
	closed   atomic.Bool
	nodes    [maxHSMs]atomic.Pointer[nodeSession] // by member index; made on first use

	pwMu     sync.Mutex // guards password
	password secret     // kept to log in again on an HSM that comes back; wiped by Close

	objMu   sync.Mutex
	objects map[ObjectID]sessionObject // session objects and where they live

	tokens tokenHSMs // quorum tokens and the HSM that issued each
}

// nodeSession is a Session's node session on one HSM.
type nodeSession struct {
	cur  atomic.Pointer[openSession] // nil: none
	lock chan struct{}               // held while opening; a channel so that waiters can give up
}

type openSession struct {
	id    uint64
	epoch uint64 // of the member when it was opened
}

// sessionObject is a session object: it lives in one node session only.
type sessionObject struct {
	m     *member
	epoch uint64
	sid   uint64
}

// secret is a password held in memory; it never prints.
type secret []byte

func (secret) String() string                 { return "[REDACTED]" }
func (secret) GoString() string               { return "[REDACTED]" }
func (secret) LogValue() slog.Value           { return slog.StringValue("[REDACTED]") }
func (s secret) MarshalText() ([]byte, error) { return []byte("[REDACTED]"), nil }

// Login opens a session for username with role ("admin", "crypto-user",
// "appliance-user") and logs it in: first on one HSM, so that a wrong
// password counts once, then on every other HSM that is up. HSMs that are
// down now get a session and a login when the Session first uses them after
// they came back; for that the Session keeps password in memory until Close.
func (c *Cluster) Login(ctx context.Context, role, username, password string) (*Session, error) {
	s := &Session{
		c: c, role: role, username: username, password: secret(password),
		objects: map[ObjectID]sessionObject{},
	}
	first, err := c.invoke(ctx, s, call{op: "login", retry: true}, func(context.Context, *member, uint64) error { return nil })
	if err != nil {
		s.wipe()
		return nil, err
	}
	var wg sync.WaitGroup
	for _, m := range c.live() {
		if m == first || !m.up.Load() {
			continue
		}
		wg.Go(func() {
			epoch := m.epoch.Load()
			// Watched like any request: a silent HSM does not hold up the login.
			c.busy(m)
			defer c.idle(m)
			ctx, stop := m.bound(ctx)
			defer stop()
			_, err := s.ensure(ctx, m)
			c.heardFrom(m, err)
			if err != nil {
				if r := refusal(m.addr, err); r != nil {
					c.log.Warn("login refused by one HSM", "hsm", m.addr, "user", username, "err", r)
				} else if ctx.Err() == nil {
					c.markDown(m, epoch, err)
				}
			}
		})
	}
	wg.Wait()
	return s, nil
}

// Username is the user the Session is logged in as.
func (s *Session) Username() string { return s.username }

// ensure returns s's node session on m, opening one and logging in if m has
// none in its current epoch. A transport failure or refusal is returned as
// gRPC gave it.
func (s *Session) ensure(ctx context.Context, m *member) (uint64, error) {
	ns := s.node(m.idx)
	if cur := ns.cur.Load(); cur != nil && cur.epoch == m.epoch.Load() && !s.closed.Load() {
		return cur.id, nil
	}
	select {
	case ns.lock <- struct{}{}:
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
	defer func() { <-ns.lock }()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	epoch := m.epoch.Load()
	if cur := ns.cur.Load(); cur != nil && cur.epoch == epoch {
		return cur.id, nil // opened while we waited
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.RequestTimeout)
	defer cancel()
	open, err := m.rpc.OpenSession(ctx, &hsmv1.OpenSessionRequest{})
	if err != nil {
		return 0, err
	}
	s.pwMu.Lock()
	req := &hsmv1.LoginRequest{Session: open.GetSession(), Role: s.role, Username: s.username, Password: string(s.password)}
	s.pwMu.Unlock()
	if _, err := m.rpc.Login(ctx, req); err != nil {
		if refusal(m.addr, err) != nil {
			_, _ = m.rpc.CloseSession(ctx, &hsmv1.SessionRequest{Session: open.GetSession()})
		}
		return 0, err
	}
	ns.cur.Store(&openSession{id: open.GetSession(), epoch: epoch})
	return open.GetSession(), nil
}

// node returns s's node session slot for member idx, making it on first
// use: members that join the cluster after Login get theirs then.
func (s *Session) node(idx int) *nodeSession {
	if ns := s.nodes[idx].Load(); ns != nil {
		return ns
	}
	s.nodes[idx].CompareAndSwap(nil, &nodeSession{lock: make(chan struct{}, 1)})
	return s.nodes[idx].Load()
}

// forget drops the node session sid on m, if it is still the current one:
// the next request there opens another.
func (s *Session) forget(m *member, sid uint64) {
	ns := s.node(m.idx)
	if cur := ns.cur.Load(); cur != nil && cur.id == sid {
		ns.cur.CompareAndSwap(cur, nil)
	}
}

// setPassword replaces the password kept for logging in again.
func (s *Session) setPassword(p string) {
	s.pwMu.Lock()
	defer s.pwMu.Unlock()
	clear(s.password)
	s.password = secret(p)
}

func (s *Session) wipe() {
	s.pwMu.Lock()
	defer s.pwMu.Unlock()
	clear(s.password)
	s.password = nil
}

// Close closes the Session's node sessions (best effort: an HSM that is down
// drops them by itself) and wipes the password. It returns the HSMs'
// refusals, if any.
func (s *Session) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	defer s.wipe()
	members := s.c.live()
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		ns := s.nodes[m.idx].Load()
		if ns == nil {
			continue // never used there
		}
		wg.Go(func() {
			select {
			case ns.lock <- struct{}{}: // wait for a login in progress
			case <-ctx.Done():
				errs[i] = fmt.Errorf("client: close session on HSM %s: %w", m.addr, context.Cause(ctx))
				return
			}
			cur := ns.cur.Swap(nil)
			<-ns.lock
			if cur == nil || cur.epoch != m.epoch.Load() || !m.up.Load() || s.c.closed() {
				return
			}
			rctx, cancel := context.WithTimeout(ctx, s.c.cfg.RequestTimeout)
			defer cancel()
			_, err := m.rpc.CloseSession(rctx, &hsmv1.SessionRequest{Session: cur.id})
			if r := refusal(m.addr, err); r != nil && r.RV != ck.CKR_SESSION_HANDLE_INVALID {
				errs[i] = fmt.Errorf("client: close session: %w", r)
			}
		})
	}
	wg.Wait()
	s.objMu.Lock()
	s.objects = nil
	s.objMu.Unlock()
	return errors.Join(errs...)
}

// sessionObjectHSM returns where the first session object of ids lives (ok
// false when ids has none), or an error if that node session is gone.
func (s *Session) sessionObjectHSM(ids []ObjectID) (*member, bool, error) {
	if len(ids) == 0 {
		return nil, false, nil
	}
	s.objMu.Lock()
	defer s.objMu.Unlock()
	for _, id := range ids {
		o, ok := s.objects[id]
		if !ok {
			continue
		}
		cur := s.node(o.m.idx).cur.Load()
		if !o.m.up.Load() || o.m.epoch.Load() != o.epoch || cur == nil || cur.id != o.sid {
			delete(s.objects, id)
			return nil, true, &Error{RV: ck.CKR_OBJECT_HANDLE_INVALID, HSM: o.m.addr,
				Msg: fmt.Sprintf("session object %d was lost with its session on HSM %s", id, o.m.addr)}
		}
		return o.m, true, nil
	}
	return nil, false, nil
}

// liveSessionObject returns one of the session's session objects whose node
// session is still current, so a new session object can be placed beside it:
// an operation that uses two session objects (wrap one with the other) works
// only if they live on the same HSM.
func (s *Session) liveSessionObject() (ObjectID, bool) {
	s.objMu.Lock()
	defer s.objMu.Unlock()
	for id, o := range s.objects {
		cur := s.node(o.m.idx).cur.Load()
		if o.m.up.Load() && o.m.epoch.Load() == o.epoch && cur != nil && cur.id == o.sid {
			return id, true
		}
	}
	return 0, false
}

// reserveSessionObject refuses a creation that would exceed the bound on
// tracked session objects.
func (s *Session) reserveSessionObject(n int) error {
	s.objMu.Lock()
	defer s.objMu.Unlock()
	if s.objects == nil {
		return ErrClosed
	}
	if len(s.objects)+n > maxSessionObjects {
		return &Error{RV: ck.CKR_DEVICE_MEMORY, Msg: fmt.Sprintf("more than %d session objects in one session", maxSessionObjects)}
	}
	return nil
}

func (s *Session) addSessionObject(id ObjectID, m *member, sid uint64, epoch uint64) {
	s.objMu.Lock()
	defer s.objMu.Unlock()
	if s.objects != nil {
		s.objects[id] = sessionObject{m: m, epoch: epoch, sid: sid}
	}
}

func (s *Session) dropSessionObject(id ObjectID) {
	s.objMu.Lock()
	defer s.objMu.Unlock()
	delete(s.objects, id)
}
