package node

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
)

// loginLimiter paces logins per client address, before any password is
// hashed. For each address:
//
//   - one login at a time: the next waits for the one in progress, so that
//     an address cannot have many guesses judged at once (they would all
//     count before the first failure slowed it down);
//   - a token bucket (ClientLimits.LoginRate, LoginBurst) bounds its logins
//     over time, right or wrong;
//   - after a failed login (wrong password, unknown or locked user) the
//     address pauses LoginFailureDelay, four times longer after each further
//     consecutive failure, up to LoginMaxFailureDelay; a successful login
//     ends the pause, and failures are forgotten after twice the longest
//     pause without one.
//
// A login whose turn comes within LoginWait (and within half of its
// caller's deadline) waits for it; any other is refused at once with
// RESOURCE_EXHAUSTED / CKR_FUNCTION_FAILED, saying when to try again. The
// device's own lock (MaxLoginFailures) still applies; the pause only slows
// one address down, so that it cannot lock a user in seconds.
//
// At most LoginAddresses addresses are tracked. An address whose state
// holds nothing (no login in progress, a full bucket, no failure) is
// dropped when room is needed; if none can be, new addresses share one
// state, which then paces all of them together: under an attack from that
// many addresses the node slows new addresses down rather than forget the
// failures it counted.
type loginLimiter struct {
	lim ClientLimits
	now func() time.Time

	// mu guards byAddr, lastSweep and every loginState's fields but turn.
	mu        sync.Mutex
	byAddr    map[addrKey]*loginState
	overflow  *loginState
	lastSweep time.Time
}

type loginState struct {
	turn        chan struct{} // holds one value while a login of the address runs
	holders     int           // logins waiting or running: the state cannot be dropped
	tokens      float64
	refilled    time.Time
	failures    int // consecutive failed logins
	lastFailure time.Time
}

func newLoginLimiter(lim ClientLimits, now func() time.Time) *loginLimiter {
	l := &loginLimiter{lim: lim, now: now, byAddr: map[addrKey]*loginState{}}
	l.overflow = l.newState(now())
	return l
}

func (l *loginLimiter) newState(now time.Time) *loginState {
	return &loginState{turn: make(chan struct{}, 1), tokens: float64(l.lim.LoginBurst), refilled: now}
}

// login runs f, a device login for addr, when addr's turn comes, and
// records its outcome. It returns f's error, or a refusal or the caller's
// context error if f did not run.
func (l *loginLimiter) login(ctx context.Context, addr addrKey, f func() error) error {
	st := l.get(addr)
	defer l.put(st)

	deadline := time.Now().Add(l.lim.LoginWait)
	if dl, ok := ctx.Deadline(); ok {
		if half := time.Now().Add(time.Until(dl) / 2); half.Before(deadline) {
			deadline = half
		}
	}
	select {
	case st.turn <- struct{}{}: // free: take it even if the wait is over
	default:
		wctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		select {
		case st.turn <- struct{}{}:
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return status.FromContextError(err).Err()
			}
			return errThrottled(l.lim.LoginWait, "another login from %s is in progress: try again later", addr)
		}
	}
	defer func() { <-st.turn }()

	l.mu.Lock()
	now := l.now()
	l.refresh(st, now)
	tokenWait := time.Duration(0)
	if st.tokens < 1 {
		tokenWait = time.Duration((1 - st.tokens) / l.lim.LoginRate * float64(time.Second))
	}
	failWait := time.Duration(0)
	if st.failures > 0 {
		failWait = st.lastFailure.Add(l.failureDelay(st.failures)).Sub(now)
	}
	failures := st.failures
	l.mu.Unlock()

	wait := max(tokenWait, failWait)
	if wait > 0 && wait > time.Until(deadline) {
		if failWait >= tokenWait {
			return errThrottled(wait, "logins from %s are paused after %d consecutive failures: try again in %s", addr, failures, roundUp(wait))
		}
		return errThrottled(wait, "too many logins from %s: try again in %s", addr, roundUp(wait))
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}

	l.mu.Lock()
	l.refresh(st, l.now())
	st.tokens-- // may go below zero after a wait on another clock: the next login waits longer
	l.mu.Unlock()

	err := f()

	l.mu.Lock()
	defer l.mu.Unlock()
	switch rv := hsm.Code(err); {
	case err == nil:
		st.failures = 0
	case rv == ck.CKR_PIN_INCORRECT || rv == ck.CKR_PIN_LOCKED:
		st.failures++
		st.lastFailure = l.now()
	}
	return err
}

// failureDelay is the pause after k ≥ 1 consecutive failures.
func (l *loginLimiter) failureDelay(k int) time.Duration {
	d := l.lim.LoginFailureDelay
	for i := 1; i < k && d < l.lim.LoginMaxFailureDelay; i++ {
		d *= 4
	}
	return min(d, l.lim.LoginMaxFailureDelay)
}

// refresh refills st's bucket and forgets old failures; l.mu is held.
func (l *loginLimiter) refresh(st *loginState, now time.Time) {
	if el := now.Sub(st.refilled); el > 0 {
		st.tokens = min(float64(l.lim.LoginBurst), st.tokens+el.Seconds()*l.lim.LoginRate)
		st.refilled = now
	}
	if st.failures > 0 && now.Sub(st.lastFailure) > 2*l.lim.LoginMaxFailureDelay {
		st.failures = 0
	}
}

// get returns addr's state, making room or sharing the overflow state when
// the table is full.
func (l *loginLimiter) get(addr addrKey) *loginState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.byAddr[addr]
	if st == nil {
		now := l.now()
		if len(l.byAddr) >= l.lim.LoginAddresses && now.Sub(l.lastSweep) >= time.Second {
			l.lastSweep = now
			for a, s := range l.byAddr {
				l.refresh(s, now)
				if s.holders == 0 && s.failures == 0 && s.tokens >= float64(l.lim.LoginBurst) {
					delete(l.byAddr, a)
				}
			}
		}
		if len(l.byAddr) < l.lim.LoginAddresses {
			st = l.newState(now)
			l.byAddr[addr] = st
		} else {
			st = l.overflow
		}
	}
	st.holders++
	return st
}

func (l *loginLimiter) put(st *loginState) {
	l.mu.Lock()
	st.holders--
	l.mu.Unlock()
}

func roundUp(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return (d + time.Second - 1).Truncate(time.Second)
}
