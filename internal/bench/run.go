package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Target is what a benchmark runs against.
type Target interface {
	// Describe says what the target is, for the report.
	Describe(ctx context.Context) TargetInfo
	// Prepare makes what op needs (its key, as a token object if
	// tokenKeys, else a session object; nothing for a generation).
	Prepare(ctx context.Context, op Op, tokenKeys bool) (Workload, error)
}

// Workload is one operation ready to run.
type Workload interface {
	// Worker returns what one of threads threads runs; each is used by
	// one goroutine.
	Worker(ctx context.Context, threads int) (Worker, error)
	// Close destroys what Prepare made. It is called once, after every
	// Worker was closed.
	Close(ctx context.Context) error
}

// Worker runs the operation, over and over, in one thread.
type Worker interface {
	// Do runs the operation once; ctx bounds it.
	Do(ctx context.Context) error
	// Close destroys the objects Do made and ends the thread's session,
	// if it has one of its own.
	Close(ctx context.Context) error
}

// Tidier is a Worker that has housekeeping to do between operations
// (destroying the keys its generations made): Tidy runs untimed, in the
// worker's thread.
type Tidier interface {
	Tidy(ctx context.Context) error
}

// Config is one benchmark run.
type Config struct {
	Ops       []Op
	Threads   []int
	Duration  time.Duration // of each cell
	OpTimeout time.Duration // of each operation
	TokenKeys bool
	// HoldKeys token AES keys are made before the first cell and held
	// through every cell (destroyed when the run ends), to measure how the
	// cost of an operation grows with the keys a cluster holds.
	HoldKeys int
	// Progress, if set, is called about every 200ms while a cell runs,
	// and once when it ends.
	Progress func(Progress)
}

// Progress is a running cell's state.
type Progress struct {
	Op       string
	Threads  int
	Cell     int // 1-based
	Cells    int
	Elapsed  time.Duration
	Duration time.Duration
	Ops      uint64
	Errors   uint64
}

// cleanupTimeout bounds the destruction of what a cell or workload made,
// which runs even when the run was cancelled.
const cleanupTimeout = 2 * time.Minute

// maxWorkers bounds --threads.
const maxWorkers = 4096

// Validate checks c.
func (c *Config) Validate() error {
	if len(c.Ops) == 0 {
		return errors.New("bench: no operation")
	}
	if len(c.Threads) == 0 {
		return errors.New("bench: no thread count")
	}
	for _, n := range c.Threads {
		if n < 1 || n > maxWorkers {
			return fmt.Errorf("bench: %d threads: want 1 to %d", n, maxWorkers)
		}
	}
	if c.Duration <= 0 {
		return errors.New("bench: the duration must be positive")
	}
	if c.OpTimeout <= 0 {
		return errors.New("bench: the operation timeout must be positive")
	}
	if c.HoldKeys < 0 || c.HoldKeys > maxHeldKeys {
		return fmt.Errorf("bench: %d keys to hold: want 0 to %d", c.HoldKeys, maxHeldKeys)
	}
	return nil
}

// maxHeldKeys bounds --hold-keys.
const maxHeldKeys = 10_000_000

// Run runs every cell (each op at each thread count) against t and returns
// the cells run. When ctx is cancelled it stops, destroys what it made
// and returns the cells finished so far with ctx's error.
func Run(ctx context.Context, t Target, c Config) (cells []Cell, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.HoldKeys > 0 {
		release, err := hold(ctx, t, c.HoldKeys, c.OpTimeout)
		if err != nil {
			return nil, fmt.Errorf("bench: making %d keys to hold: %w", c.HoldKeys, err)
		}
		defer func() {
			if rerr := release(); rerr != nil && err == nil {
				err = fmt.Errorf("bench: destroying the keys it held: %w", rerr)
			}
		}()
	}
	total := len(c.Ops) * len(c.Threads)
	for _, op := range c.Ops {
		if err := ctx.Err(); err != nil {
			return cells, err
		}
		w, err := t.Prepare(ctx, op, c.TokenKeys)
		if err != nil {
			return cells, fmt.Errorf("bench: %s: %w", op.Name, err)
		}
		for _, n := range c.Threads {
			if ctx.Err() != nil {
				break
			}
			cell, err := runCell(ctx, w, op, n, c, len(cells)+1, total)
			if err != nil {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
				_ = w.Close(cctx)
				cancel()
				return cells, fmt.Errorf("bench: %s at %d threads: %w", op.Name, n, err)
			}
			cells = append(cells, cell)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		err = w.Close(cctx)
		cancel()
		if err != nil {
			return cells, fmt.Errorf("bench: %s: destroying its keys: %w", op.Name, err)
		}
	}
	return cells, ctx.Err()
}

// runCell runs op in n threads for c.Duration.
func runCell(ctx context.Context, w Workload, op Op, n int, c Config, index, total int) (Cell, error) {
	workers := make([]Worker, 0, n)
	closeAll := func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		errs := make([]error, len(workers))
		var wg sync.WaitGroup
		for i, wk := range workers {
			wg.Go(func() { errs[i] = wk.Close(cctx) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	for range n {
		wk, err := w.Worker(ctx, n)
		if err != nil {
			return Cell{}, errors.Join(fmt.Errorf("starting a thread: %w", err), closeAll())
		}
		workers = append(workers, wk)
	}

	var (
		ops, fails atomic.Uint64
		firstErr   atomic.Pointer[string]
		hists      = make([]*Histogram, n)
		wg         sync.WaitGroup
	)
	run, stop := context.WithTimeout(ctx, c.Duration)
	defer stop()
	cpu0, cpuOK := processCPU()
	start := time.Now()
	for i, wk := range workers {
		h := new(Histogram)
		hists[i] = h
		tidy, _ := wk.(Tidier)
		wg.Go(func() {
			var backoff time.Duration
			for run.Err() == nil {
				if tidy != nil {
					tctx, cancel := context.WithTimeout(context.WithoutCancel(run), c.OpTimeout)
					err := tidy.Tidy(tctx)
					cancel()
					if err != nil {
						fails.Add(1)
						msg := err.Error()
						firstErr.CompareAndSwap(nil, &msg)
					}
				}
				octx, cancel := context.WithTimeout(context.WithoutCancel(run), c.OpTimeout)
				t0 := time.Now()
				err := wk.Do(octx)
				d := time.Since(t0)
				cancel()
				if err != nil {
					fails.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					// Failing again at once would only spin: back off,
					// doubling from 1ms to 100ms while the failures last.
					backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
					select {
					case <-run.Done():
					case <-time.After(backoff):
					}
					continue
				}
				backoff = 0
				h.Record(d)
				ops.Add(1)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	report := func() {
		if c.Progress != nil {
			c.Progress(Progress{Op: op.Name, Threads: n, Cell: index, Cells: total, Elapsed: time.Since(start),
				Duration: c.Duration, Ops: ops.Load(), Errors: fails.Load()})
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	// The operations in flight when the duration ends finish within their
	// own timeout; a thread stuck beyond that (a call into a PKCS#11 module
	// that ignores every bound) ends the run.
	grace := 2*c.OpTimeout + 5*time.Second // an operation, then a Tidy
	hard := time.NewTimer(c.Duration + grace)
	defer hard.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			report()
		case <-hard.C:
			return Cell{}, fmt.Errorf("a thread did not return within %v of the cell's end", grace)
		}
	}
	elapsed := time.Since(start)
	cpu1, _ := processCPU()
	report()
	var h Histogram
	for _, x := range hists {
		h.Merge(x)
	}
	cell := newCell(op, n, c.TokenKeys, elapsed, &h, fails.Load())
	cell.Interrupted = ctx.Err() != nil
	if cpuOK && cell.Ops > 0 {
		cell.CPUPerOp = micros((cpu1 - cpu0) / time.Duration(cell.Ops))
	}
	if p := firstErr.Load(); p != nil {
		cell.FirstError = *p
	}
	if err := closeAll(); err != nil {
		return cell, fmt.Errorf("destroying the objects made: %w", err)
	}
	return cell, nil
}
