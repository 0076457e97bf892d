package store

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// committer is the store's group commit. Writers queue a transaction
// function; one goroutine runs everything queued in a single bbolt
// transaction, commits it with one fsync, then answers every writer. While
// it fsyncs, new writers queue up and form the next group.
//
// bbolt's DB.Batch groups the same way but starts a group only after a
// MaxBatchDelay timer (10 ms by default), which caps a lone writer at about
// 100 commits/s; here a lone writer commits at once and grouping comes
// from the fsync itself.
//
// A queued function may run more than once: when one function fails, the
// transaction is rolled back, the failing writer gets its error, and the
// others run again in a new transaction. Functions must therefore be
// idempotent: reset their outputs on entry and touch nothing outside tx.
// Outcomes that write nothing (not found, stale) are returned through the
// function's own variables with a nil error, so they never cost a retry.
type committer struct {
	db *bolt.DB

	mu     sync.Mutex // guards queue and closed
	queue  []*commitReq
	closed bool

	kick    chan struct{} // capacity 1: "the queue may be non-empty"
	stopped chan struct{} // closed when run returns
}

type commitReq struct {
	fn   func(*bolt.Tx) error
	done chan error // capacity 1, so run never blocks on a writer that left
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	go c.run()
	return c
}

// do runs fn in a write transaction and returns once that transaction is
// durable, or fails. ctx is checked before the write is queued; once queued,
// do waits for the commit's outcome whatever ctx does (one group commit: an
// fsync), so an error always means "not stored" and success "stored". A
// caller that returned while the write could still commit would leave its
// own state (an HSM's device) behind the store, which nothing repairs.
func (c *committer) do(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &commitReq{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.queue = append(c.queue, req)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a kick is already pending; run will see our request
	}
	return <-req.done
}

// close stops accepting writes, lets run commit what is queued, and waits
// for run to return.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	<-c.stopped
}

// run is the committer's goroutine, owned by the committer: close stops it
// and waits for it.
func (c *committer) run() {
	defer close(c.stopped)
	debug.SetPanicOnFault(true) // a fault in the mmap becomes an error, see guard
	for range c.kick {
		c.mu.Lock()
		group, closed := c.queue, c.closed
		c.queue = nil
		c.mu.Unlock()
		c.commit(group)
		if closed {
			return // nothing can have been queued after closed was set
		}
	}
}

// commit runs a group in one transaction, dropping failing members until the
// rest commits.
func (c *committer) commit(group []*commitReq) {
	for len(group) > 0 {
		failed := -1
		var failErr error
		err := guard(func() error {
			return c.db.Update(func(tx *bolt.Tx) error {
				for i, r := range group {
					if err := guard(func() error { return r.fn(tx) }); err != nil {
						failed, failErr = i, err
						return err
					}
				}
				return nil
			})
		})
		if failed >= 0 {
			group[failed].done <- noSpace(failErr)
			group = slices.Delete(group, failed, failed+1)
			continue
		}
		if err != nil {
			err = fmt.Errorf("store: commit: %w", noSpace(err))
		}
		for _, r := range group {
			r.done <- err
		}
		return
	}
}

// guard runs fn, turning a panic (bbolt panics on some corrupt pages) or a
// memory fault in the mmap (a file truncated under us) into an error.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bbolt panicked: %v", ErrCorruptDatabase, p)
		}
	}()
	return fn()
}
