// Package memnet is an in-memory network for peersync: it connects Syncers
// (or anything serving the peersync Handle* methods) of one process, so that
// replication can be tested without sockets. Every directed link can be cut
// (calls fail with ErrUnreachable, as a partition would), delayed and healed.
// A link cut while a call is in flight loses the answer: the callee may have
// acted on a request whose caller sees ErrUnreachable.
//
// Records cross the network as copies, as they would on the wire.
//
// It is for tests. It must not import internal/hsm or internal/node.
package memnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// ErrUnreachable: the link is cut or the callee is not attached.
var ErrUnreachable = errors.New("memnet: peer unreachable")

// Handler serves a node's side of peersync; *peersync.Syncer is one.
type Handler interface {
	HandlePush(ctx context.Context, from uint32, recs []store.Sealed) (int, error)
	HandleDigest(ctx context.Context, buckets int) ([][]byte, error)
	HandleVersions(ctx context.Context, buckets int, which []int) ([]peersync.Meta, error)
	HandleFetch(ctx context.Context, keys []peersync.Key) ([]store.Sealed, error)
	HandleCatchUp(ctx context.Context, from uint32) (peersync.Backlog, error)
}

type link struct{ from, to uint32 }

// Network is a set of nodes and the links between them. The zero value is
// not usable; call New. It is safe for concurrent use.
type Network struct {
	mu       sync.Mutex // guards the maps
	nodes    map[uint32]Handler
	cut      map[link]bool
	isolated map[uint32]bool
	delay    map[link]time.Duration
}

// New returns a network with no nodes, every link up.
func New() *Network {
	return &Network{
		nodes:    make(map[uint32]Handler),
		cut:      make(map[link]bool),
		isolated: make(map[uint32]bool),
		delay:    make(map[link]time.Duration),
	}
}

// Attach makes h answer calls to node id (replacing any earlier handler).
func (n *Network) Attach(id uint32, h Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[id] = h
}

// Detach removes node id: calls to it fail with ErrUnreachable.
func (n *Network) Detach(id uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.nodes, id)
}

// Cut cuts the links between a and b, both ways.
func (n *Network) Cut(a, b uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[link{a, b}] = true
	n.cut[link{b, a}] = true
}

// CutOneWay cuts the link from → to only: calls from from to to fail, and so
// do the answers of calls from to to from.
func (n *Network) CutOneWay(from, to uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[link{from, to}] = true
}

// Isolate cuts every link of node id until Rejoin or HealAll.
func (n *Network) Isolate(id uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[id] = true
}

// Rejoin undoes Isolate (links cut one by one stay cut).
func (n *Network) Rejoin(id uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.isolated, id)
}

// Heal restores the links between a and b, both ways, and removes their
// delay.
func (n *Network) Heal(a, b uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range []link{{a, b}, {b, a}} {
		delete(n.cut, l)
		delete(n.delay, l)
	}
}

// HealAll restores every link and removes every delay and isolation.
func (n *Network) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	clear(n.isolated)
	clear(n.delay)
}

// Delay holds every call between a and b (both ways) for d before
// delivering it, or until the caller's context ends. Zero removes the delay.
func (n *Network) Delay(a, b uint32, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range []link{{a, b}, {b, a}} {
		if d <= 0 {
			delete(n.delay, l)
		} else {
			n.delay[l] = d
		}
	}
}

// Peer returns node from's view of node to.
func (n *Network) Peer(from, to uint32) peersync.Peer { return &peer{net: n, from: from, to: to} }

// Peers returns node from's view of each of to, skipping from itself.
func (n *Network) Peers(from uint32, to ...uint32) []peersync.Peer {
	var out []peersync.Peer
	for _, id := range to {
		if id != from {
			out = append(out, n.Peer(from, id))
		}
	}
	return out
}

func (n *Network) blocked(l link) bool {
	return n.cut[l] || n.isolated[l.from] || n.isolated[l.to]
}

// route returns the handler a call on l reaches and the link's delay.
func (n *Network) route(l link) (Handler, time.Duration, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.nodes[l.to]
	if !ok || n.blocked(l) {
		return nil, 0, fmt.Errorf("node %d to %d: %w", l.from, l.to, ErrUnreachable)
	}
	return h, n.delay[l], nil
}

func (n *Network) answerBlocked(l link) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blocked(link{l.to, l.from})
}

type peer struct {
	net      *Network
	from, to uint32
}

func (p *peer) ID() uint32 { return p.to }

// call delivers one request: it checks the link, waits out its delay, runs
// serve on the callee, then checks the link of the answer.
func (p *peer) call(ctx context.Context, serve func(Handler) error) error {
	l := link{p.from, p.to}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, d, err := p.net.route(l)
	if err != nil {
		return err
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := serve(h); err != nil {
		return err
	}
	if p.net.answerBlocked(l) {
		return fmt.Errorf("answer of node %d to %d: %w", p.to, p.from, ErrUnreachable)
	}
	return nil
}

func (p *peer) Push(ctx context.Context, recs []store.Sealed) (int, error) {
	var applied int
	err := p.call(ctx, func(h Handler) (err error) {
		applied, err = h.HandlePush(ctx, p.from, copyRecs(recs))
		return err
	})
	if err != nil {
		return 0, err
	}
	return applied, nil
}

func (p *peer) Digest(ctx context.Context, buckets int) ([][]byte, error) {
	var out [][]byte
	err := p.call(ctx, func(h Handler) error {
		d, err := h.HandleDigest(ctx, buckets)
		for _, b := range d {
			out = append(out, bytes.Clone(b))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (p *peer) Versions(ctx context.Context, buckets int, which []int) ([]peersync.Meta, error) {
	var out []peersync.Meta
	err := p.call(ctx, func(h Handler) (err error) {
		out, err = h.HandleVersions(ctx, buckets, slices.Clone(which))
		out = slices.Clone(out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (p *peer) Fetch(ctx context.Context, keys []peersync.Key) ([]store.Sealed, error) {
	var out []store.Sealed
	err := p.call(ctx, func(h Handler) error {
		recs, err := h.HandleFetch(ctx, slices.Clone(keys))
		out = copyRecs(recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (p *peer) CatchUp(ctx context.Context) (peersync.Backlog, error) {
	var out peersync.Backlog
	err := p.call(ctx, func(h Handler) (err error) {
		out, err = h.HandleCatchUp(ctx, p.from)
		return err
	})
	if err != nil {
		return peersync.Backlog{}, err
	}
	return out, nil
}

func copyRecs(recs []store.Sealed) []store.Sealed {
	out := make([]store.Sealed, len(recs))
	for i, r := range recs {
		r.Box = bytes.Clone(r.Box)
		out[i] = r
	}
	return out
}
