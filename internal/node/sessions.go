package node

import (
	"context"
	"crypto/rand"
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
type sessions struct {
	idle time.Duration
	max  int
	now  func() time.Time

	// mu guards byHandle and every clientSession's fields. A session with
	// busy > 0 is in use by an RPC and is never reaped.
	mu       sync.Mutex
	byHandle map[uint64]*clientSession
}

type clientSession struct {
	handle   uint64
	dev      hsm.SessionID
	lastUsed time.Time
	busy     int
	objects  map[hsm.ObjectID]struct{} // session objects it created
}

func newSessions(idle time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{idle: idle, max: max, now: now, byHandle: map[uint64]*clientSession{}}
}

// open registers a new device session under a fresh handle.
func (t *sessions) open(dev *hsm.Device) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byHandle) >= t.max {
		return 0, refusal(ck.CKR_SESSION_COUNT, "node has %d open sessions, its limit", len(t.byHandle))
	}
	var h uint64
	for h == 0 || t.byHandle[h] != nil {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand)
		h = binary.LittleEndian.Uint64(b[:])
	}
	t.byHandle[h] = &clientSession{handle: h, dev: dev.OpenSession(), lastUsed: t.now(), objects: map[hsm.ObjectID]struct{}{}}
	return h, nil
}

// acquire finds a session for one RPC and marks it busy until release.
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
	t.mu.Unlock()
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
	return s, true
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

// reap closes every session idle for longer than the timeout and returns
// how many it closed.
func (t *sessions) reap(dev *hsm.Device) int {
	now := t.now()
	var stale []*clientSession
	t.mu.Lock()
	for h, s := range t.byHandle {
		if s.busy == 0 && now.Sub(s.lastUsed) > t.idle {
			stale = append(stale, s)
			delete(t.byHandle, h)
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
	t.byHandle = map[uint64]*clientSession{}
	t.mu.Unlock()
	for _, s := range all {
		dev.CloseSession(s.dev)
	}
}

// reapLoop closes idle sessions until ctx ends.
func (n *Node) reapLoop(ctx context.Context) error {
	every := min(max(n.cfg.SessionIdleTimeout/4, time.Second), time.Minute)
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
