package peersync

import (
	"context"
	"time"
)

// Hooks for the external tests.

// RoundForTest runs one anti-entropy round now.
func (s *Syncer) RoundForTest(ctx context.Context) error { return s.round(ctx) }

// SetQueueLimitForTest changes the per-peer queue bound; call before use.
func (s *Syncer) SetQueueLimitForTest(n int) { s.queueLimit = n }

// QueuedForTest returns how many keys wait in the queue for peer id.
func (s *Syncer) QueuedForTest(id uint32) int {
	for _, ps := range s.peers {
		if ps.id == id {
			return ps.queued()
		}
	}
	return -1
}

// SetPeerTimeoutForTest changes the bound on one call to a peer; call
// before use.
func (s *Syncer) SetPeerTimeoutForTest(d time.Duration) { s.peerTimeout = d }

func (ps *peerState) queued() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.pending)
}
