package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Backoff between two attempts of one request: full jitter over an
// exponential envelope.
const (
	backoffBase = 10 * time.Millisecond
	backoffMax  = time.Second
)

// call describes one request for invoke.
type call struct {
	op    string
	retry bool // idempotent: resent to another HSM after a transport failure
	// resend: it changes state but carries an idempotency token, so it too
	// is resent after a transport failure, at most maxSends times (0: no
	// limit); its outcome is unknown only if the caller gives up.
	resend   bool
	maxSends int
	objs     []ObjectID // objects it uses: routes fresh and session objects

	// A multi-part step runs only on the HSM (and in the node session) its
	// operation began in.
	pin      *member
	pinEpoch uint64
	pinSID   uint64

	// only: this HSM and no other (it alone holds what the request needs,
	// e.g. a quorum token); onlyWhat names that for the error.
	only     *member
	onlyWhat string

	// multiPart: an unknown outcome may leave an operation active in the
	// node session, so it is not used for new requests again.
	multiPart bool
}

// requestFunc sends one request to m, in the node session sid (0 when there
// is no Session), bounded by ctx.
type requestFunc func(ctx context.Context, m *member, sid uint64) error

// invoke runs fn on an HSM chosen for cl and returns that HSM. A refusal is
// returned as an *Error and never retried. After a transport failure the HSM
// is marked down; the request goes to another HSM if it never left or if it
// is idempotent (cl.retry), otherwise the error is an *UnknownOutcomeError.
// The number of attempts is bounded, and each attempt by RequestTimeout.
func (c *Cluster) invoke(ctx context.Context, s *Session, cl call, fn requestFunc) (*member, error) {
	if c.closed() {
		return nil, ErrClosed
	}
	var last error
	var failed uint64 // HSMs that failed this request: tried again only if nothing else is up
	renewed := false
	sends, sentTo := 0, ""
	// giveUp ends the call: a resend call that reached an HSM before may
	// have been done there, so its outcome is unknown.
	giveUp := func(err error) error {
		if cl.resend && sends > 0 {
			return &UnknownOutcomeError{Op: cl.op, HSM: sentTo, Err: err}
		}
		return err
	}
	for attempt := 0; attempt < c.nslots()+2; attempt++ {
		if attempt > 0 && !renewed {
			if err := c.sleep(ctx, attempt); err != nil {
				return nil, giveUp(fmt.Errorf("client: %s: %w (last failure: %w)", cl.op, err, last))
			}
		}
		m, err := c.route(s, cl, failed)
		if err != nil {
			if last != nil {
				return nil, giveUp(fmt.Errorf("client: %s: %w (last failure: %w)", cl.op, err, last))
			}
			return nil, fmt.Errorf("client: %s: %w", cl.op, err)
		}
		epoch := m.epoch.Load()
		c.busy(m)
		sid, sent, err := c.attempt(ctx, s, m, cl, fn)
		c.idle(m)
		if sent {
			sends, sentTo = sends+1, m.addr
		}
		if err == nil {
			c.fresh.seen(cl.objs, m.bit(), c.all.Load())
			return m, nil
		}
		if r := refusal(m.addr, err); r != nil {
			if !sent && s != nil && cl.pin == nil && hsmCondition(r.RV) {
				// Opening the session there failed for a reason of that
				// HSM's own (its disk is full): the request never left, so
				// another HSM may serve it.
				failed |= m.bit()
				last = fmt.Errorf("HSM %s: %w", m.addr, r)
				if c.pick(c.all.Load()&^failed) != nil {
					continue
				}
				return nil, giveUp(fmt.Errorf("client: %s: %w", cl.op, r))
			}
			if r.RV == ck.CKR_SESSION_HANDLE_INVALID && s != nil && cl.pin == nil && !renewed {
				// The HSM forgot our session (it restarted, or the session
				// idled out) and did nothing: log in again and resend.
				s.forget(m, sid)
				renewed = true
				continue
			}
			if sent {
				sends-- // this send was refused: it did nothing
			}
			if r.RV == ck.CKR_SESSION_HANDLE_INVALID && s != nil && cl.pin != nil {
				// The operation's node session is gone (its connection
				// ended): so is the operation; the next request logs in again.
				s.forget(m, sid)
				return nil, giveUp(fmt.Errorf("client: %s: %w (HSM %s closed its session)", cl.op, ErrOperationLost, m.addr))
			}
			return nil, giveUp(fmt.Errorf("client: %s: %w", cl.op, r))
		}
		renewed = false
		switch {
		case errors.Is(err, ErrClosed):
			return nil, giveUp(fmt.Errorf("client: %s: %w", cl.op, err))
		case ctx.Err() != nil: // the caller gave up; the HSM is not to blame
			if s != nil && sent && cl.multiPart {
				s.forget(m, sid)
			}
			if sent && !cl.retry {
				return nil, &UnknownOutcomeError{Op: cl.op, HSM: m.addr, Err: context.Cause(ctx)}
			}
			return nil, giveUp(fmt.Errorf("client: %s: %w", cl.op, context.Cause(ctx)))
		case c.closed():
			return nil, giveUp(fmt.Errorf("client: %s: %w", cl.op, ErrClosed))
		}
		c.markDown(m, epoch, err)
		failed |= m.bit()
		last = fmt.Errorf("HSM %s: %w", m.addr, err)
		if sent && (!cl.retry && !cl.resend || cl.maxSends > 0 && sends >= cl.maxSends) {
			return nil, &UnknownOutcomeError{Op: cl.op, HSM: m.addr, Err: err}
		}
	}
	return nil, giveUp(fmt.Errorf("client: %s: %w (last failure: %w)", cl.op, ErrNoHSM, last))
}

// hsmCondition reports whether a refusal is about the HSM that gave it (its
// disk is full, it failed), not about the request or the user: the same
// request may succeed on another HSM.
func hsmCondition(rv ck.RV) bool {
	return rv == ck.CKR_DEVICE_MEMORY || rv == ck.CKR_DEVICE_ERROR
}

// attempt sends fn to m once, first opening s's node session there if
// needed; sent reports whether fn's request may have reached the HSM.
// Both end early if m is marked down meanwhile (e.g. found silent).
func (c *Cluster) attempt(ctx context.Context, s *Session, m *member, cl call, fn requestFunc) (sid uint64, sent bool, err error) {
	ctx, stop := m.bound(ctx)
	defer stop()
	switch {
	case cl.pin != nil:
		sid = cl.pinSID
	case s != nil:
		if sid, err = s.ensure(ctx, m); err != nil {
			return 0, false, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	err = fn(ctx, m, sid)
	c.heardFrom(m, err)
	return sid, true, err
}

// route chooses the HSM for one attempt of cl, avoiding those of failed if
// it can.
func (c *Cluster) route(s *Session, cl call, failed uint64) (*member, error) {
	if cl.pin != nil {
		if !cl.pin.up.Load() || cl.pin.epoch.Load() != cl.pinEpoch {
			return nil, fmt.Errorf("%w (HSM %s)", ErrOperationLost, cl.pin.addr)
		}
		return cl.pin, nil
	}
	if cl.only != nil {
		if !cl.only.up.Load() {
			return nil, fmt.Errorf("%w: HSM %s, which holds %s, is down", ErrNoHSM, cl.only.addr, cl.onlyWhat)
		}
		return cl.only, nil
	}
	if s != nil {
		if m, ok, err := s.sessionObjectHSM(cl.objs); ok {
			return m, err
		}
	}
	allowed := c.all.Load()
	if mask, ok := c.fresh.holders(cl.objs); ok && mask&c.all.Load() != 0 {
		allowed = mask & c.all.Load()
	}
	// Every HSM known to hold a fresh object may be down: the object may
	// have been replicated since, so then try the others.
	for _, mask := range [...]uint64{allowed &^ failed, allowed, c.all.Load() &^ failed, c.all.Load()} {
		if m := c.pick(mask); m != nil {
			return m, nil
		}
	}
	return nil, ErrNoHSM
}

// sleep waits before attempt n (n ≥ 1), or until ctx or the Cluster ends.
func (c *Cluster) sleep(ctx context.Context, n int) error {
	d := backoffMax
	if n < 20 {
		d = min(backoffBase<<(n-1), backoffMax)
	}
	d = d/2 + time.Duration(c.randN(int(d/2)+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-c.ctx.Done():
		return ErrClosed
	}
}
