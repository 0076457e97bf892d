// Package testwait waits, in tests, for the system under test to reach a
// state (a replica to converge, a node to report ready, a resource to reach
// a state) by polling a condition until a deadline, never by sleeping a
// fixed time.
//
// Only tests import it (internal/layers_test.go checks); it imports nothing
// from Coffer.
package testwait

import (
	"context"
	"errors"
	"time"
)

// ErrNotYet is the error of a condition made by Holds that does not hold.
var ErrNotYet = errors.New("condition does not hold yet")

// Eventually calls cond, then again every interval, until it returns nil,
// and returns nil. When timeout passes first it returns cond's last error;
// when ctx ends first, ctx's error. cond is always called at least once.
func Eventually(ctx context.Context, timeout, interval time.Duration, cond func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-deadline.C:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Holds turns a condition that reports whether it holds into one for
// Eventually, which fails with ErrNotYet while it does not.
func Holds(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return ErrNotYet
	}
}
