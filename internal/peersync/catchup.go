package peersync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Catch-up: how a node learns that it is behind a peer, and gets level
// before it answers.
//
// A peer's send queue for this node holds every change the peer made that
// this node has not acknowledged (Notify, Replicate). CatchUp asks each
// peer to flush that queue to this node now (Peer.CatchUp: the peer pushes
// what it queued before the request and answers once this node has
// acknowledged it), and reports whether the queue was complete: a queue
// that overflowed since the last successful round with this node, or a peer
// that has not finished its own first round (it restarted), cannot tell
// what this node lacks; this node then runs anti-entropy with that peer
// before CatchUp returns. Records a peer got from a third node are in that
// node's queue, not the peer's: with three or more HSMs, CatchUp covers
// what reachable peers made, and anti-entropy the rest.

// Bounds of catch-up.
const (
	// CatchUpBudget is how long the serving peer flushes per CatchUp call
	// before it answers with the rest still queued; the caller asks again
	// while the flush makes progress.
	CatchUpBudget = 300 * time.Millisecond
	// catchUpCallTimeout declares a peer unresponsive (frozen, cut) when a
	// CatchUp call takes this long.
	catchUpCallTimeout = CatchUpBudget + time.Second
	// catchUpPipeline is how many pushes a catch-up keeps in flight.
	catchUpPipeline = 3
	// probeInterval is how often a peer that did not answer a catch-up is
	// asked again, in the background (probeLoop).
	probeInterval = 200 * time.Millisecond
	// MaxCatchUp bounds one CatchUp of this node with all its peers: the
	// client's default request timeout, so a node that cannot catch up in
	// time makes the client try another HSM rather than answer short.
	MaxCatchUp = 10 * time.Second
)

// Backlog is what a peer reports about its send queue for the caller.
type Backlog struct {
	Records  int           // changes queued for the caller and not yet acknowledged
	Lag      time.Duration // age of the oldest of them (0 when none)
	Complete bool          // the queue holds everything of the peer's the caller may lack
	Flushed  bool          // every change queued before the request is acknowledged now
}

// Behind is how far this node is behind one peer, as last learned.
type Behind struct {
	Records int           // records the peer still has to deliver (its queue for us, plus what anti-entropy is fetching)
	Lag     time.Duration // age of the oldest of them, by the peer's clock
	Known   bool          // the peer has answered a catch-up call since this node started
	At      time.Time     // when the peer last reported (local clock)
}

// answered records that a call to the peer succeeded.
func (ps *peerState) answered() { ps.unresponsive.Store(false) }

// report keeps a peer's backlog report.
func (ps *peerState) report(b Backlog, at time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.behind = Behind{Records: b.Records, Lag: b.Lag, Known: true, At: at}
}

// backlog describes the queue for the peer as of now.
func (ps *peerState) backlog(now time.Time, ready bool) Backlog {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	b := Backlog{Records: len(ps.pending) + len(ps.inflight), Complete: ready && !ps.dropped}
	if t, ok := ps.oldestLocked(); ok {
		b.Lag = max(now.Sub(t), 0)
	}
	return b
}

// settledBefore reports whether every change announced at or before t has
// been acknowledged, and returns a channel closed at the next settlement.
func (ps *peerState) settledBefore(t time.Time) (bool, <-chan struct{}) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, u := range ps.pending {
		if !u.After(t) {
			return false, ps.changed
		}
	}
	for _, u := range ps.inflight {
		if !u.After(t) {
			return false, ps.changed
		}
	}
	return true, ps.changed
}

func (s *Syncer) peerByID(id uint32) *peerState {
	for _, ps := range s.peers {
		if ps.id == id {
			return ps
		}
	}
	return nil
}

// HandleCatchUp serves a peer's CatchUp: it pushes to peer from what is
// queued for it, for about CatchUpBudget, and reports the queue as it is
// then. Flushed is true once every change queued before the request has
// been acknowledged by the peer. When a push to the caller fails (it can
// call this node, this node cannot reach it) the report is not Complete,
// so the caller pulls by anti-entropy.
func (s *Syncer) HandleCatchUp(ctx context.Context, from uint32) (Backlog, error) {
	ps := s.peerByID(from)
	if ps == nil {
		return Backlog{}, fmt.Errorf("peersync: catch-up: %w: node %d is not a peer", ErrInvalidRequest, from)
	}
	start := s.cfg.Now()
	deadline := time.NewTimer(CatchUpBudget)
	defer deadline.Stop()
	// Up to catchUpPipeline pushes in flight: this node exports the next
	// batch while the caller applies one.
	var (
		wg      sync.WaitGroup
		failMu  sync.Mutex
		failErr error
	)
	sem := make(chan struct{}, catchUpPipeline)
	failed := func() error {
		failMu.Lock()
		defer failMu.Unlock()
		return failErr
	}
	flushed := false
flush:
	for failed() == nil {
		done, changed := ps.settledBefore(start)
		if done {
			flushed = true
			break
		}
		select {
		case <-deadline.C:
			break flush
		default:
		}
		if batch := ps.take(MaxBatch); len(batch) > 0 {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				err := s.pushKeys(ctx, ps, mapKeys(batch))
				ps.done(batch, err == nil)
				if err != nil {
					failMu.Lock()
					failErr = err
					failMu.Unlock()
				}
			})
			continue
		}
		select { // the rest is in flight (ours or the sender's)
		case <-changed:
		case <-deadline.C:
			break flush
		case <-ctx.Done():
			break flush
		}
	}
	wg.Wait()
	if err := failed(); err != nil {
		// This node cannot reach the caller (a one-way cut): the caller
		// must pull, by anti-entropy over its own link.
		s.log.Debug("catch-up: cannot push to the caller", "peer", from, "err", err)
		return ps.backlog(s.cfg.Now(), false), nil
	}
	if err := ctx.Err(); err != nil {
		return Backlog{}, fmt.Errorf("peersync: catch-up of %d: %w", from, err)
	}
	if !flushed {
		flushed, _ = ps.settledBefore(start)
	}
	b := ps.backlog(s.cfg.Now(), s.Ready())
	b.Flushed = flushed
	return b, nil
}

func mapKeys(m map[Key]time.Time) func(yield func(Key) bool) {
	return func(yield func(Key) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// catchUpPeer has the peer flush its queue for this node, call after call
// while it makes progress, and returns its last report.
func (s *Syncer) catchUpPeer(ctx context.Context, ps *peerState) (Backlog, error) {
	for {
		start := s.cfg.Now()
		cctx, cancel := context.WithTimeout(ctx, catchUpCallTimeout)
		b, err := ps.peer.CatchUp(cctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && cctx.Err() != nil && ps.pushedAt.Load() >= start.UnixNano() {
				// The call timed out while the peer kept pushing its
				// backlog: this node applies slower than the peer sends
				// (a loaded machine). Ask again rather than give up on a
				// peer that is working.
				continue
			}
			if ctx.Err() == nil {
				ps.unresponsive.Store(true)
			}
			return Backlog{}, fmt.Errorf("peersync: catch-up with peer %d: %w", ps.id, err)
		}
		ps.answered()
		ps.report(b, s.cfg.Now())
		if b.Flushed || !b.Complete {
			return b, nil
		}
		if err := ctx.Err(); err != nil {
			return b, err
		}
	}
}

// probeLoop asks an unresponsive peer to catch this node up, every
// probeInterval, until it answers: callers of CatchUp do not wait for such
// a peer, so this is how it is taken back (within about probeInterval of a
// cut healing or a frozen peer resuming) without making them pay for it.
func (s *Syncer) probeLoop(ctx context.Context, ps *peerState) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !ps.unresponsive.Load() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, MaxCatchUp)
		if _, err := s.catchUpPeer(cctx, ps); err == nil {
			s.log.Info("peer answers a catch-up again", "peer", ps.id)
		}
		cancel()
	}
}

// repair runs anti-entropy with one peer now (both ways, no purge).
func (s *Syncer) repair(ctx context.Context, ps *peerState) error {
	epoch := ps.epoch()
	snap := &snapshot{now: s.cfg.Now()}
	var err error
	ps.syncMu.Lock()
	defer ps.syncMu.Unlock()
	if snap.metas, err = s.local(ctx, s.cfg.Buckets, nil); err != nil {
		return err
	}
	snap.digest = make([][]byte, len(snap.metas))
	for b, ms := range snap.metas {
		snap.digest[b] = digest(ms)
	}
	if _, err := s.syncPeer(ctx, ps, snap); err != nil {
		return err
	}
	ps.answered()
	ps.caughtUp(epoch)
	return nil
}

// barrier is one CatchUp run that callers share: each caller needs a run
// that started after it arrived, so a caller joins the run not yet
// started, or starts one after the current run ends.
type barrier struct {
	done chan struct{}
	err  error
	prev *barrier
}

// CatchUp brings this node level with every reachable peer as of the call:
// when it returns nil, every record a reachable peer acknowledged before
// the call (a key created there, a user changed) is in this node's store,
// and OnApply has run for it. Peers that do not answer (down, frozen, cut
// off) are skipped, and so, until a call to them succeeds again, are peers
// that did not answer in time before; the error joins what failed.
// Concurrent calls share runs. One run is bounded by MaxCatchUp.
func (s *Syncer) CatchUp(ctx context.Context) error {
	s.barrierMu.Lock()
	if b := s.barrierNext; b != nil {
		s.barrierMu.Unlock()
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			return fmt.Errorf("peersync: catch up: %w", ctx.Err())
		}
	}
	b := &barrier{done: make(chan struct{}), prev: s.barrierCur}
	s.barrierNext = b
	s.barrierMu.Unlock()
	if b.prev != nil {
		<-b.prev.done // bounded by MaxCatchUp; joiners of b wait for it too
	}
	s.barrierMu.Lock()
	s.barrierNext, s.barrierCur = nil, b
	s.barrierMu.Unlock()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MaxCatchUp)
	b.err = s.catchUpAll(rctx)
	cancel()
	b.prev = nil
	close(b.done)
	return b.err
}

func (s *Syncer) catchUpAll(ctx context.Context) error {
	errs := make([]error, len(s.peers))
	var wg sync.WaitGroup
	for i, ps := range s.peers {
		if ps.unresponsive.Load() {
			errs[i] = fmt.Errorf("peersync: peer %d did not answer before; not waited for", ps.id)
			continue
		}
		wg.Go(func() {
			b, err := s.catchUpPeer(ctx, ps)
			if err == nil && !b.Complete {
				err = s.repair(ctx, ps)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Behind returns, per peer, how far this node is behind it as last learned
// (catch-up calls in every anti-entropy round and every CatchUp).
func (s *Syncer) Behind() map[uint32]Behind {
	out := make(map[uint32]Behind, len(s.peers))
	for _, ps := range s.peers {
		ps.mu.Lock()
		b := ps.behind
		ps.mu.Unlock()
		b.Records += int(ps.fetching.Load())
		out[ps.id] = b
	}
	return out
}

// Queued returns, per peer, how many changes wait for it to acknowledge
// them (the records behind of Lag).
func (s *Syncer) Queued() map[uint32]int {
	out := make(map[uint32]int, len(s.peers))
	for _, ps := range s.peers {
		ps.mu.Lock()
		out[ps.id] = len(ps.pending) + len(ps.inflight)
		ps.mu.Unlock()
	}
	return out
}
