package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// This file: telling a silent HSM (stopped, frozen, cut off without a reset)
// from a busy one within Config.SilenceTimeout. gRPC's keepalive cannot: it
// pings at most every 10 s. So the client watches, per HSM, the last time it
// heard from it while requests are in flight; after half of SilenceTimeout
// of silence it sends a cheap liveness probe, and after all of it the HSM is
// marked down, which cancels the requests in flight there.

// errSilent is why an HSM that stopped answering was marked down.
var errSilent = errors.New("no answer, not even to a liveness probe")

// memberLife ends when its member is marked down: requests in flight on the
// member are bound to it.
type memberLife struct {
	parent context.Context // the Cluster's: the next life's parent
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newMemberLife(parent context.Context) *memberLife {
	ctx, cancel := context.WithCancelCause(parent)
	return &memberLife{parent: parent, ctx: ctx, cancel: cancel}
}

// busy records that a request to m starts. When m was idle, the silence
// counts from now.
func (c *Cluster) busy(m *member) {
	if m.outstanding.Add(1) == 1 {
		c.hear(m)
	}
}

func (c *Cluster) idle(m *member) { m.outstanding.Add(-1) }

// hear records a sign of life from m.
func (c *Cluster) hear(m *member) { m.heard.Store(int64(time.Since(c.born))) }

// heardFrom records a sign of life from m if err is an answer (a result or
// a refusal), not a transport failure or cancellation.
func (c *Cluster) heardFrom(m *member, err error) {
	if answered(err) {
		c.hear(m)
	}
}

func answered(err error) bool {
	if err == nil {
		return true
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Unknown:
		return false
	}
	return true
}

// bound returns ctx, also cancelled when m is marked down.
func (m *member) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(m.life.Load().ctx, func() { cancel(fmt.Errorf("HSM %s marked down", m.addr)) })
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// watchLoop marks down the HSMs that have requests in flight and have been
// silent for SilenceTimeout, probing them after half of it (never down
// without a probe that went unanswered), until Close.
func (c *Cluster) watchLoop() {
	t := time.NewTicker(max(c.cfg.SilenceTimeout/10, time.Millisecond))
	defer t.Stop()
	var probes sync.WaitGroup
	defer probes.Wait()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Since(c.born)
		for _, m := range *c.slots.Load() { // a member that left is never up
			if !m.up.Load() || m.outstanding.Load() == 0 {
				continue
			}
			heard, probed := time.Duration(m.heard.Load()), time.Duration(m.probed.Load())
			quiet := now - heard
			switch {
			case quiet < c.cfg.SilenceTimeout/2:
			case probed <= heard: // not asked since it was last heard
				if m.probing.CompareAndSwap(false, true) {
					m.probed.Store(int64(now))
					probes.Go(func() {
						defer m.probing.Store(false)
						c.liveness(m)
					})
				}
			case quiet >= c.cfg.SilenceTimeout && now-probed >= c.cfg.SilenceTimeout/2 && c.anotherUp(m):
				// Silent, a probe had its time to be answered, and another
				// HSM can serve. (The last HSM up is left to RequestTimeout:
				// cancelling its requests would help no one.)
				c.markDown(m, m.epoch.Load(), fmt.Errorf("%w for %s", errSilent, quiet.Round(time.Millisecond)))
			}
		}
		c.watchRounds.Add(1)
	}
}

func (c *Cluster) anotherUp(m *member) bool {
	for _, o := range *c.slots.Load() { // a member that left is never up
		if o != m && o.up.Load() {
			return true
		}
	}
	return false
}

// liveness asks m for something cheap that needs no session.
func (c *Cluster) liveness(m *member) {
	ctx, cancel := m.bound(c.ctx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, c.cfg.SilenceTimeout/2)
	defer cancelT()
	_, err := m.rpc.Mechanisms(ctx, &hsmv1.Empty{})
	c.heardFrom(m, err)
}
