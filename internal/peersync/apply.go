package peersync

import (
	"context"
	"sync"

	"github.com/coffer-hsm/coffer/internal/store"
)

// applyWorkers bounds the records one batch applies at once. The store
// commits what is queued together in one transaction with one fsync (group
// commit), so a batch costs a few fsyncs, not one per record: applied one
// after the other, catch-up ran at the disk's fsync rate (~1,000 records/s).
const applyWorkers = 256

// keyLocks serializes Apply+OnApply per key, so OnApply calls for one key
// never overlap and follow the store's order, while different keys apply in
// parallel (and share commits). The invariant: a key is in held exactly
// while one goroutine holds its lock; waiters count in refs.
type keyLocks struct {
	mu   sync.Mutex
	held map[Key]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int // guarded by keyLocks.mu
}

func (l *keyLocks) lock(k Key) func() {
	l.mu.Lock()
	if l.held == nil {
		l.held = make(map[Key]*keyLock)
	}
	kl := l.held[k]
	if kl == nil {
		kl = &keyLock{}
		l.held[k] = kl
	}
	kl.refs++
	l.mu.Unlock()
	kl.mu.Lock()
	return func() {
		kl.mu.Unlock()
		l.mu.Lock()
		if kl.refs--; kl.refs == 0 {
			delete(l.held, k)
		}
		l.mu.Unlock()
	}
}

// apply stores one record from a peer and calls OnApply if it was stored.
func (s *Syncer) apply(ctx context.Context, rec store.Sealed) (bool, error) {
	unlock := s.applyLocks.lock(Key{rec.Kind, rec.ID})
	defer unlock()
	// Once Apply may have stored the record, OnApply must run: a caller that
	// gives up (a Push cancelled because Replicate had enough acks) must not
	// leave the store ahead of the device, which anti-entropy cannot see.
	ctx = context.WithoutCancel(ctx)
	applied, err := s.cfg.Store.Apply(ctx, rec)
	if err != nil {
		return false, err
	}
	if applied && s.cfg.OnApply != nil {
		s.cfg.OnApply(ctx, rec)
	}
	return applied, nil
}

// applyResult is the outcome of one record of applyAll.
type applyResult struct {
	applied bool
	err     error
}

// applyAll applies recs at once (at most applyWorkers in flight) and returns
// each one's outcome, in order. Records of one key keep their order.
func (s *Syncer) applyAll(ctx context.Context, recs []store.Sealed) []applyResult {
	out := make([]applyResult, len(recs))
	if len(recs) == 1 {
		out[0].applied, out[0].err = s.apply(ctx, recs[0])
		return out
	}
	// A key twice in one batch: apply the later copies after the earlier.
	first := make(map[Key]int, len(recs))
	var again []int
	for i, r := range recs {
		k := Key{r.Kind, r.ID}
		if _, dup := first[k]; dup {
			again = append(again, i)
			continue
		}
		first[k] = i
	}
	run := func(idx func(yield func(int) bool)) {
		sem := make(chan struct{}, applyWorkers)
		var wg sync.WaitGroup
		for i := range idx {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				out[i].applied, out[i].err = s.apply(ctx, recs[i])
			})
		}
		wg.Wait()
	}
	run(func(yield func(int) bool) {
		for _, i := range first {
			if !yield(i) {
				return
			}
		}
	})
	for _, i := range again {
		out[i].applied, out[i].err = s.apply(ctx, recs[i])
	}
	return out
}
