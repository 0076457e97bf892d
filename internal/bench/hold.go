package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// holdThreads is how many threads make (and destroy) the held keys.
const holdThreads = 8

// hold makes n token AES keys through t, as the aes-keygen-token operation
// makes them, and returns what destroys them. Each generation is bounded
// by opTimeout; the destruction by cleanupTimeout and a millisecond a key
// per thread beyond it, and it runs even when ctx is cancelled.
func hold(ctx context.Context, t Target, n int, opTimeout time.Duration) (release func() error, err error) {
	ops, err := ParseOps([]string{"aes-keygen-token"})
	if err != nil {
		return nil, err
	}
	w, err := t.Prepare(ctx, ops[0], true)
	if err != nil {
		return nil, err
	}
	threads := min(holdThreads, n)
	workers := make([]Worker, 0, threads)
	release = func() error {
		limit := cleanupTimeout + time.Duration(n/threads)*time.Millisecond
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
		defer cancel()
		errs := make([]error, len(workers)+1)
		var wg sync.WaitGroup
		for i, wk := range workers {
			wg.Go(func() { errs[i] = wk.Close(cctx) })
		}
		wg.Wait()
		errs[len(workers)] = w.Close(cctx)
		return errors.Join(errs...)
	}
	for range threads {
		wk, err := w.Worker(ctx, threads)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("starting a thread: %w", err), release())
		}
		workers = append(workers, wk)
	}
	errs := make([]error, threads)
	var wg sync.WaitGroup
	for i, wk := range workers {
		count := n / threads
		if i < n%threads {
			count++
		}
		wg.Go(func() {
			for range count {
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				err := wk.Do(octx) // no Tidy: the keys stay until release
				cancel()
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, release())
	}
	return release, nil
}
