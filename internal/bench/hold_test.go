package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingTarget is a Target whose generations add to live and whose
// Close of a worker takes away what that worker made; its other
// operations do nothing.
type countingTarget struct {
	live     atomic.Int64
	failFrom int64 // a generation fails once live reaches it (0: never)
}

func (c *countingTarget) Describe(context.Context) TargetInfo { return TargetInfo{Kind: "test"} }

func (c *countingTarget) Prepare(_ context.Context, op Op, _ bool) (Workload, error) {
	return &countingWorkload{t: c, gen: op.Kind == KindKeyGen}, nil
}

type countingWorkload struct {
	t   *countingTarget
	gen bool
}

func (w *countingWorkload) Worker(context.Context, int) (Worker, error) {
	return &countingWorker{w: w}, nil
}

func (w *countingWorkload) Close(context.Context) error { return nil }

type countingWorker struct {
	w    *countingWorkload
	mu   sync.Mutex
	made int64
}

func (k *countingWorker) Do(context.Context) error {
	if !k.w.gen {
		return nil
	}
	if f := k.w.t.failFrom; f > 0 && k.w.t.live.Load() >= f {
		return errors.New("token full")
	}
	k.mu.Lock()
	k.made++
	k.mu.Unlock()
	k.w.t.live.Add(1)
	return nil
}

func (k *countingWorker) Close(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.w.t.live.Add(-k.made)
	k.made = 0
	return nil
}

// TestHoldKeys: --hold-keys makes its keys before the first cell, holds
// them through every cell and destroys them when the run ends, also when
// making them fails part way.
func TestHoldKeys(t *testing.T) {
	ops, err := ParseOps([]string{"ecdsa-p256", "hmac-sha256-1k"})
	if err != nil {
		t.Fatal(err)
	}
	tg := new(countingTarget)
	var seen []int64
	cells, err := Run(t.Context(), tg, Config{Ops: ops, Threads: []int{1, 2}, Duration: 20 * time.Millisecond,
		OpTimeout: time.Second, HoldKeys: 1001, Progress: func(Progress) { seen = append(seen, tg.live.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 4 {
		t.Errorf("%d cells, want 4", len(cells))
	}
	if len(seen) == 0 {
		t.Fatal("no progress reported")
	}
	for _, n := range seen {
		if n != 1001 {
			t.Fatalf("%d keys held during a cell, want 1001 (all: %v)", n, seen)
		}
	}
	if n := tg.live.Load(); n != 0 {
		t.Errorf("%d held keys left after the run", n)
	}

	full := &countingTarget{failFrom: 500}
	if _, err := Run(t.Context(), full, Config{Ops: ops, Threads: []int{1}, Duration: 20 * time.Millisecond,
		OpTimeout: time.Second, HoldKeys: 1001}); err == nil {
		t.Error("a run whose keys could not be made succeeded")
	}
	if n := full.live.Load(); n != 0 {
		t.Errorf("%d keys left after making them failed", n)
	}
	if err := (&Config{Ops: ops, Threads: []int{1}, Duration: time.Second, OpTimeout: time.Second, HoldKeys: -1}).Validate(); err == nil {
		t.Error("a negative --hold-keys was accepted")
	}
}
