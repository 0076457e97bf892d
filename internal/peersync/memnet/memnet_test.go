package memnet_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/peersync/memnet"
	"github.com/coffer-hsm/coffer/internal/store"
)

// counter is a Handler that counts pushes and keeps the last records.
type counter struct {
	pushes int
	last   []store.Sealed
}

func (c *counter) HandlePush(_ context.Context, _ uint32, recs []store.Sealed) (int, error) {
	c.pushes++
	c.last = recs
	return len(recs), nil
}

func (c *counter) HandleDigest(context.Context, int) ([][]byte, error) { return [][]byte{{1}}, nil }

func (c *counter) HandleVersions(context.Context, int, []int) ([]peersync.Meta, error) {
	return []peersync.Meta{}, nil
}

func (c *counter) HandleFetch(context.Context, []peersync.Key) ([]store.Sealed, error) {
	return []store.Sealed{}, nil
}

func (c *counter) HandleCatchUp(context.Context, uint32) (peersync.Backlog, error) {
	return peersync.Backlog{Complete: true, Flushed: true}, nil
}

func TestLinks(t *testing.T) {
	rec := store.Sealed{Kind: store.KindObject, ID: "k", Box: []byte("box")}
	for _, tc := range []struct {
		name      string
		setup     func(n *memnet.Network)
		timeout   time.Duration
		wantErr   error
		delivered bool // the callee saw the request
	}{
		{"up", func(*memnet.Network) {}, 0, nil, true},
		{"cut", func(n *memnet.Network) { n.Cut(2, 1) }, 0, memnet.ErrUnreachable, false},
		{"isolated callee", func(n *memnet.Network) { n.Isolate(2) }, 0, memnet.ErrUnreachable, false},
		{"isolated then rejoined", func(n *memnet.Network) { n.Isolate(2); n.Rejoin(2) }, 0, nil, true},
		{"cut then healed", func(n *memnet.Network) { n.Cut(1, 2); n.Heal(1, 2) }, 0, nil, true},
		{"healed all", func(n *memnet.Network) { n.Cut(1, 2); n.Isolate(1); n.Delay(1, 2, time.Hour); n.HealAll() }, 0, nil, true},
		{"answer lost", func(n *memnet.Network) { n.CutOneWay(2, 1) }, 0, memnet.ErrUnreachable, true},
		{"request lost", func(n *memnet.Network) { n.CutOneWay(1, 2) }, 0, memnet.ErrUnreachable, false},
		{"detached", func(n *memnet.Network) { n.Detach(2) }, 0, memnet.ErrUnreachable, false},
		{"delayed past the deadline", func(n *memnet.Network) { n.Delay(1, 2, time.Hour) }, 10 * time.Millisecond, context.DeadlineExceeded, false},
		{"delayed, delivered", func(n *memnet.Network) { n.Delay(1, 2, time.Millisecond) }, 0, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := memnet.New()
			h := &counter{}
			n.Attach(2, h)
			tc.setup(n)
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			p := n.Peer(1, 2)
			if p.ID() != 2 {
				t.Fatalf("ID = %d", p.ID())
			}
			_, err := p.Push(ctx, []store.Sealed{rec})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Push = %v, want %v", err, tc.wantErr)
			}
			if got := h.pushes == 1; got != tc.delivered {
				t.Fatalf("delivered = %v, want %v", got, tc.delivered)
			}
		})
	}
}

func TestRecordsAreCopied(t *testing.T) {
	n := memnet.New()
	h := &counter{}
	n.Attach(2, h)
	rec := store.Sealed{Kind: store.KindObject, ID: "k", Box: []byte("box")}
	if _, err := n.Peer(1, 2).Push(t.Context(), []store.Sealed{rec}); err != nil {
		t.Fatal(err)
	}
	rec.Box[0] = 'X'
	if string(h.last[0].Box) != "box" {
		t.Fatalf("callee sees the caller's later change: %q", h.last[0].Box)
	}
}

func TestPeersSkipsSelf(t *testing.T) {
	ps := memnet.New().Peers(2, 1, 2, 3)
	if len(ps) != 2 || ps[0].ID() != 1 || ps[1].ID() != 3 {
		t.Fatalf("Peers(2, 1, 2, 3) = %v", ps)
	}
}
