package peersync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-hsm/coffer/internal/store"
)

// snapshot is the local side of one anti-entropy round.
type snapshot struct {
	now    time.Time
	metas  [][]Meta // by bucket, sorted by key
	digest [][]byte // by bucket
}

// expired reports whether a record written at v is older than TombstoneTTL.
func (s *Syncer) expired(snap *snapshot, v store.Version) bool {
	return snap.now.Sub(time.Unix(0, v.Wall)) >= s.cfg.TombstoneTTL
}

// candidate reports whether m is a tombstone old enough to purge.
func (s *Syncer) candidate(snap *snapshot, m Meta) bool {
	return m.Tombstone && s.expired(snap, m.Version)
}

// peerResult is what one round learned from one peer.
type peerResult struct {
	// confirmed holds the purge candidates the peer has at the same version,
	// or (being expired) has no record of at all.
	confirmed map[Key]bool
	err       error
}

// round runs one anti-entropy round with every peer in parallel, then purges
// the expired tombstones every peer confirmed, if every peer answered. It
// returns the peers' errors, joined.
func (s *Syncer) round(ctx context.Context) error {
	s.roundMu.Lock()
	defer s.roundMu.Unlock()
	// First each peer flushes its queue for this node (in bulk, and so that
	// the digests then differ only by what is in flight), reporting how far
	// behind this node is.
	var wg sync.WaitGroup
	for _, ps := range s.peers {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, MaxCatchUp)
			defer cancel()
			if _, err := s.catchUpPeer(cctx, ps); err != nil {
				s.log.Debug("catch-up with peer failed", "peer", ps.id, "err", err)
			}
		})
	}
	wg.Wait()
	epochs := make([]uint64, len(s.peers))
	for i, ps := range s.peers {
		epochs[i] = ps.epoch() // before the snapshot: what was dropped before is in it
	}
	snap := &snapshot{now: s.cfg.Now()}
	var err error
	if snap.metas, err = s.local(ctx, s.cfg.Buckets, nil); err != nil {
		s.log.Error("anti-entropy: cannot list local records", "err", err)
		return err
	}
	snap.digest = make([][]byte, len(snap.metas))
	for b, ms := range snap.metas {
		snap.digest[b] = digest(ms)
	}

	results := make([]peerResult, len(s.peers))
	for i, ps := range s.peers {
		wg.Go(func() {
			ps.syncMu.Lock()
			defer ps.syncMu.Unlock()
			results[i].confirmed, results[i].err = s.syncPeer(ctx, ps, snap)
		})
	}
	wg.Wait()

	var errs []error
	for i, ps := range s.peers {
		if err := results[i].err; err != nil {
			errs = append(errs, err)
			if !ps.failing {
				s.log.Warn("anti-entropy with peer failed", "peer", ps.id, "err", err)
			} else {
				s.log.Debug("anti-entropy with peer failed", "peer", ps.id, "err", err)
			}
			ps.failing = true
			continue
		}
		if ps.failing {
			s.log.Info("anti-entropy with peer succeeded again", "peer", ps.id)
		}
		ps.failing = false
		ps.answered()
		ps.caughtUp(epochs[i])
	}
	if err := errors.Join(errs...); err != nil {
		return err // never purge while a peer is unreachable
	}
	s.purge(ctx, snap, results)
	return ctx.Err()
}

// syncPeer repairs both sides of the difference between the local snapshot
// and one peer: it fetches and applies what the peer has newer or we lack,
// and pushes what we have newer or the peer lacks. An expired tombstone is
// neither shipped to nor fetched by a side that has no record of the key.
func (s *Syncer) syncPeer(ctx context.Context, ps *peerState, snap *snapshot) (map[Key]bool, error) {
	buckets := len(snap.digest)
	cctx, cancel := s.callCtx(ctx)
	remote, err := ps.peer.Digest(cctx, buckets)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("peersync: digest from peer %d: %w", ps.id, err)
	}
	if len(remote) != buckets {
		return nil, fmt.Errorf("peersync: digest from peer %d: %d buckets, asked %d", ps.id, len(remote), buckets)
	}
	confirmed := make(map[Key]bool)
	var diff []int
	inDiff := make([]bool, buckets)
	for b := range buckets {
		if !bytes.Equal(remote[b], snap.digest[b]) {
			diff = append(diff, b)
			inDiff[b] = true
			continue
		}
		for _, m := range snap.metas[b] {
			if s.candidate(snap, m) {
				confirmed[m.Key] = true
			}
		}
	}
	if len(diff) == 0 {
		return confirmed, nil
	}

	theirs := make(map[Key]Meta)
	for chunk := range slices.Chunk(diff, versionsChunk) {
		cctx, cancel := s.callCtx(ctx)
		ms, err := ps.peer.Versions(cctx, buckets, chunk)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("peersync: versions from peer %d: %w", ps.id, err)
		}
		for _, m := range ms {
			if !m.valid() || m.Version.IsZero() || !inDiff[Bucket(m.Key, buckets)] {
				s.log.Warn("anti-entropy: peer listed an unexpected record", "peer", ps.id, "key", m.Key.String())
				continue
			}
			if old, ok := theirs[m.Key]; !ok || m.Version.Compare(old.Version) > 0 {
				theirs[m.Key] = m
			}
		}
	}

	var fetch, push []Key
	for _, b := range diff {
		for _, m := range snap.metas[b] {
			r, ok := theirs[m.Key]
			delete(theirs, m.Key)
			switch {
			case !ok && s.candidate(snap, m):
				confirmed[m.Key] = true // purged there already, or never needed
			case !ok:
				push = append(push, m.Key)
			case r.Version.Compare(m.Version) > 0:
				fetch = append(fetch, m.Key)
			case r.Version.Compare(m.Version) < 0:
				push = append(push, m.Key)
			case s.candidate(snap, m):
				confirmed[m.Key] = true // same version: the same tombstone
			}
		}
	}
	for k, r := range theirs { // what we have no record of
		if !(r.Tombstone && s.expired(snap, r.Version)) {
			fetch = append(fetch, k)
		}
	}
	slices.SortFunc(fetch, Key.compare)
	slices.SortFunc(push, Key.compare)
	ferr := s.fetchFrom(ctx, ps, fetch)
	perr := s.pushKeys(ctx, ps, slices.Values(push))
	if err := errors.Join(ferr, perr); err != nil {
		return nil, err
	}
	if len(fetch)+len(push) > 0 {
		s.log.Debug("anti-entropy repaired", "peer", ps.id, "fetched", len(fetch), "pushed", len(push))
	}
	return confirmed, nil
}

// fetchFrom fetches keys from a peer, MaxBatch at a time with up to
// fetchPipeline requests in flight, and applies each answer in bulk (see
// applyAll) while the next is on its way. A peer may answer part of a
// request (size limit); the rest is asked again until an answer brings
// nothing new. While it runs, the peer counts records behind (Behind).
func (s *Syncer) fetchFrom(ctx context.Context, ps *peerState, keys []Key) error {
	if len(keys) == 0 {
		return nil
	}
	var left atomic.Int64 // keys not yet applied, also counted in ps.fetching
	left.Store(int64(len(keys)))
	ps.fetching.Add(int64(len(keys)))
	defer func() { ps.fetching.Add(-left.Load()) }()
	done := func(n int) {
		left.Add(-int64(n))
		ps.fetching.Add(-int64(n))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, fetchPipeline)
	for chunk := range slices.Chunk(keys, MaxBatch) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.fetchChunk(ctx, ps, chunk, done); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				if !errors.Is(err, errRefused) {
					cancel() // the peer failed: stop asking it
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// errRefused marks records a peer sent that this store refused; fetching
// the rest goes on.
var errRefused = errors.New("peersync: refused fetched record")

// fetchChunk fetches and applies one chunk of keys, calling done with the
// count of each answer.
func (s *Syncer) fetchChunk(ctx context.Context, ps *peerState, chunk []Key, done func(int)) error {
	var errs []error
	want := slices.Clone(chunk)
	for len(want) > 0 {
		cctx, cancel := s.callCtx(ctx)
		recs, err := ps.peer.Fetch(cctx, want)
		cancel()
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("peersync: fetch from peer %d: %w", ps.id, err))...)
		}
		ps.answered()
		asked := make(map[Key]bool, len(want))
		for _, k := range want {
			asked[k] = true
		}
		got := recs[:0:0]
		for _, rec := range recs {
			k := Key{rec.Kind, rec.ID}
			if !asked[k] {
				s.log.Warn("anti-entropy: peer sent a record not asked for", "peer", ps.id, "key", k.String())
				continue
			}
			delete(asked, k)
			got = append(got, rec)
		}
		for _, r := range s.applyAll(ctx, got) {
			if r.err != nil {
				s.log.Warn("anti-entropy: refused fetched record", "peer", ps.id, "err", r.err)
				errs = append(errs, fmt.Errorf("%w from peer %d: %w", errRefused, ps.id, r.err))
			}
		}
		done(len(got))
		if len(got) == 0 {
			break // the rest is gone there (purged) or unreadable
		}
		want = slices.DeleteFunc(want, func(k Key) bool { return !asked[k] })
	}
	return errors.Join(errs...)
}

// purge removes the expired tombstones of the snapshot that every peer
// confirmed. A tombstone replaced since the snapshot is left alone (the
// store checks the version).
func (s *Syncer) purge(ctx context.Context, snap *snapshot, results []peerResult) {
	purged := 0
	for _, ms := range snap.metas {
		for _, m := range ms {
			if !s.candidate(snap, m) {
				continue
			}
			all := true
			for _, r := range results {
				if !r.confirmed[m.Key] {
					all = false
					break
				}
			}
			if !all {
				continue
			}
			err := s.cfg.Store.PurgeTombstone(ctx, m.Kind, m.ID, m.Version)
			switch {
			case err == nil:
				purged++
			case errors.Is(err, store.ErrStale):
				s.log.Debug("tombstone changed before purge", "key", m.Key.String())
			case ctx.Err() != nil:
				return
			default:
				s.log.Warn("purge tombstone", "key", m.Key.String(), "err", err)
			}
		}
	}
	if purged > 0 {
		s.log.Info("purged tombstones every peer has", "count", purged)
	}
}
