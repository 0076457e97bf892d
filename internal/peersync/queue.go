package peersync

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-hsm/coffer/internal/store"
)

// peerState is what the syncer keeps about one peer: its send queue.
type peerState struct {
	peer Peer
	id   uint32
	wake chan struct{} // capacity 1: "pending is not empty", signalled by enqueue

	failing bool // the last round with this peer failed; guarded by Syncer.roundMu

	// syncMu serializes anti-entropy with this peer (rounds and repairs).
	syncMu sync.Mutex
	// unresponsive: a catch-up call to the peer failed and no call has
	// succeeded since; CatchUp does not wait for it.
	unresponsive atomic.Bool
	fetching     atomic.Int64 // records anti-entropy is fetching from the peer now
	// pushedAt is when a push from the peer last arrived (Unix nanoseconds,
	// local clock): a catch-up call that outlasts its timeout while the
	// peer keeps pushing is slow on this side, not a silent peer.
	pushedAt atomic.Int64

	// mu guards the fields below. A key is in pending (announced, not yet
	// taken by the sender) and/or inflight (being pushed); the time is when
	// the oldest unacknowledged change of the key was announced.
	mu        sync.Mutex
	pending   map[Key]time.Time
	inflight  map[Key]time.Time
	dropped   bool          // the queue overflowed since the last successful round
	droppedAt time.Time     // oldest change lost with a dropped queue
	dropEpoch uint64        // counts overflows, so a round clears only those before it
	changed   chan struct{} // closed and replaced whenever done settles keys
	behind    Behind        // the peer's last report of its backlog for this node
}

func newPeerState(p Peer) *peerState {
	return &peerState{
		peer:     p,
		id:       p.ID(),
		wake:     make(chan struct{}, 1),
		pending:  make(map[Key]time.Time),
		inflight: make(map[Key]time.Time),
		changed:  make(chan struct{}),
	}
}

// enqueue announces a change of k made at now. It never blocks. It reports
// whether the queue overflowed and was dropped.
func (ps *peerState) enqueue(k Key, now time.Time, limit int) (overflow bool) {
	ps.mu.Lock()
	if _, ok := ps.pending[k]; !ok {
		if len(ps.pending) >= limit {
			overflow = true
			oldest := now
			for _, t := range ps.pending {
				oldest = minTime(oldest, t)
			}
			if !ps.dropped || oldest.Before(ps.droppedAt) {
				ps.droppedAt = oldest
			}
			ps.dropped = true
			ps.dropEpoch++
			clear(ps.pending)
		} else {
			ps.pending[k] = now
		}
	}
	ps.mu.Unlock()
	select {
	case ps.wake <- struct{}{}:
	default:
	}
	return overflow
}

// take moves up to n pending keys to inflight and returns them.
func (ps *peerState) take(n int) map[Key]time.Time {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	batch := make(map[Key]time.Time, min(n, len(ps.pending)))
	for k, t := range ps.pending {
		if len(batch) == n {
			break
		}
		batch[k] = t
		delete(ps.pending, k)
		if old, ok := ps.inflight[k]; !ok || t.Before(old) {
			ps.inflight[k] = t
		}
	}
	return batch
}

// done ends the push of batch: acknowledged, or put back in the queue.
func (ps *peerState) done(batch map[Key]time.Time, acked bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	close(ps.changed)
	ps.changed = make(chan struct{})
	for k, t := range batch {
		delete(ps.inflight, k)
		if acked {
			continue
		}
		if old, ok := ps.pending[k]; !ok || t.Before(old) {
			ps.pending[k] = t
		}
	}
}

// epoch returns the overflow count, read before a round starts.
func (ps *peerState) epoch() uint64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.dropEpoch
}

// caughtUp records a successful round that started at overflow count epoch:
// what a dropped queue held before then has reached the peer.
func (ps *peerState) caughtUp(epoch uint64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.dropEpoch == epoch {
		ps.dropped = false
	}
}

// oldest returns the time of the oldest change the peer has not acknowledged.
func (ps *peerState) oldest() (time.Time, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.oldestLocked()
}

func (ps *peerState) oldestLocked() (time.Time, bool) {
	var t time.Time
	found := false
	consider := func(u time.Time) {
		if !found || u.Before(t) {
			t, found = u, true
		}
	}
	for _, u := range ps.pending {
		consider(u)
	}
	for _, u := range ps.inflight {
		consider(u)
	}
	if ps.dropped {
		consider(ps.droppedAt)
	}
	return t, found
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Notify announces a local write of k: it is pushed to every peer soon,
// coalesced with other writes and retried while a peer is down. It never
// blocks; when a peer's queue is full the queue is dropped and anti-entropy
// repairs that peer. An invalid key (kind, id length) is logged and ignored.
func (s *Syncer) Notify(k Key) {
	if !k.valid() {
		s.log.Warn("notify: invalid key ignored", "key", k.String())
		return
	}
	now := s.cfg.Now()
	for _, ps := range s.peers {
		s.enqueue(ps, k, now)
	}
}

func (s *Syncer) enqueue(ps *peerState, k Key, now time.Time) {
	if ps.enqueue(k, now, s.queueLimit) {
		s.log.Warn("send queue overflowed: dropped, anti-entropy will repair",
			"peer", ps.id, "limit", s.queueLimit)
	}
}

// sendLoop pushes a peer's queued keys until ctx ends. While the peer
// fails it retries with a backoff doubling from Interval/20 to Interval,
// within [1ms, 100ms] at first and 5s at most.
func (s *Syncer) sendLoop(ctx context.Context, ps *peerState) {
	base := min(max(s.cfg.Interval/20, time.Millisecond), 100*time.Millisecond)
	maxBackoff := min(max(s.cfg.Interval, base), 5*time.Second)
	backoff := base
	for {
		batch := ps.take(MaxBatch)
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-ps.wake:
			}
			continue
		}
		err := s.pushKeys(ctx, ps, maps.Keys(batch))
		ps.done(batch, err == nil)
		if err == nil {
			ps.answered()
			backoff = base
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Debug("push failed, will retry", "peer", ps.id, "keys", len(batch), "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// pushKeys exports the current record of each key and pushes them to the
// peer in batches of at most MaxBatch records and about MaxBatchBytes.
// Keys with no record (purged since) are skipped, and so are records that
// no longer open (corrupt: retrying would not help; anti-entropy brings the
// peer's copy back).
func (s *Syncer) pushKeys(ctx context.Context, ps *peerState, keys iter.Seq[Key]) error {
	return s.pushRecords(ctx, fmt.Sprintf("peer %d", ps.id), func(ctx context.Context, recs []store.Sealed) error {
		_, err := ps.peer.Push(ctx, recs)
		return err
	}, keys)
}

// pushRecords is pushKeys through push, to the receiver named to (for
// errors and logs): a peer or a replication link.
func (s *Syncer) pushRecords(ctx context.Context, to string, push func(context.Context, []store.Sealed) error, keys iter.Seq[Key]) error {
	var batch []store.Sealed
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		cctx, cancel := s.callCtx(ctx)
		err := push(cctx, batch)
		cancel()
		batch, size = batch[:0], 0
		if err != nil {
			return fmt.Errorf("peersync: push to %s: %w", to, err)
		}
		return nil
	}
	for k := range keys {
		rec, err := s.cfg.Store.Export(ctx, k.Kind, k.ID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if _, ok := errors.AsType[*store.CorruptError](err); ok {
				s.log.Error("not pushing corrupt record", "to", to, "err", err)
				continue
			}
			return fmt.Errorf("peersync: export %s: %w", k, err)
		}
		n := recSize(rec)
		if len(batch) > 0 && (len(batch) == MaxBatch || size+n > MaxBatchBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, rec)
		size += n
	}
	return flush()
}

// recSize approximates a sealed record's size on the wire.
func recSize(r store.Sealed) int { return len(r.Box) + len(r.ID) + 32 }
