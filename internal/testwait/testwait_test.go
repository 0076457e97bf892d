package testwait_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testwait"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	err := testwait.Eventually(t.Context(), time.Minute, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Eventually = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestEventuallyGivesTheLastErrorAtTheDeadline(t *testing.T) {
	calls := 0
	last := errors.New("last")
	err := testwait.Eventually(t.Context(), 20*time.Millisecond, time.Millisecond, func() error {
		if calls++; calls == 1 {
			return errors.New("first")
		}
		return last
	})
	if err != last || calls < 2 {
		t.Fatalf("Eventually = %v after %d calls, want %v after at least 2", err, calls, last)
	}
}

func TestEventuallyCallsTheConditionOnceEvenWhenDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := 0
	if err := testwait.Eventually(ctx, time.Minute, time.Minute, func() error { calls++; return nil }); err != nil || calls != 1 {
		t.Fatalf("Eventually = %v after %d calls, want nil after 1", err, calls)
	}
	if err := testwait.Eventually(ctx, time.Minute, time.Minute, testwait.Holds(func() bool { return false })); !errors.Is(err, context.Canceled) {
		t.Fatalf("Eventually on an ended context = %v, want %v", err, context.Canceled)
	}
}

func TestEventuallyHolds(t *testing.T) {
	if err := testwait.Holds(func() bool { return true })(); err != nil {
		t.Errorf("Holds(true) = %v", err)
	}
	if err := testwait.Holds(func() bool { return false })(); err != testwait.ErrNotYet {
		t.Errorf("Holds(false) = %v, want ErrNotYet", err)
	}
}
