package peersync_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/peersync/memnet"
	"github.com/coffer-hsm/coffer/internal/store"
	"github.com/coffer-hsm/coffer/internal/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is an injectable wall clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// node is one HSM's store and syncer.
type node struct {
	id uint32
	st *store.Store
	sy *peersync.Syncer

	mu      sync.Mutex
	applied []store.Sealed // what OnApply saw
}

func (n *node) onApply(_ context.Context, rec store.Sealed) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.applied = append(n.applied, rec)
}

func (n *node) appliedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.applied)
}

type clusterOpts struct {
	nodes    int
	interval time.Duration    // zero: 10ms
	ttl      time.Duration    // zero: default
	now      func() time.Time // for stores and syncers; nil: time.Now
	mk       map[uint32][]byte
	onApply  func(id uint32, rec store.Sealed)
	logger   *slog.Logger
}

// cluster is nodes 1..n over one memnet network, every node a peer of every
// other. The syncers are not running until run.
type cluster struct {
	t     testing.TB
	net   *memnet.Network
	nodes []*node // nodes[i].id == i+1
	mk    []byte
}

func newMK(t testing.TB) []byte {
	t.Helper()
	mk := make([]byte, 32)
	if _, err := rand.Read(mk); err != nil {
		t.Fatal(err)
	}
	return mk
}

func openStore(t testing.TB, id uint32, mk []byte, now func() time.Time) *store.Store {
	t.Helper()
	dir := t.TempDir()
	nk := filepath.Join(dir, "node.key")
	if err := store.CreateNodeKey(nk); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(dir, "store.db"), NodeKeyPath: nk, Node: id, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store %d: %v", id, err)
		}
	})
	if err := st.SetMaskingKey(context.Background(), mk); err != nil {
		t.Fatal(err)
	}
	return st
}

func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, net: memnet.New(), mk: newMK(t)}
	if o.interval == 0 {
		o.interval = 10 * time.Millisecond
	}
	logger := o.logger
	if logger == nil && os.Getenv("PEERSYNC_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var ids []uint32
	for i := range o.nodes {
		ids = append(ids, uint32(i+1))
	}
	for _, id := range ids {
		mk := c.mk
		if o.mk[id] != nil {
			mk = o.mk[id]
		}
		n := &node{id: id, st: openStore(t, id, mk, o.now)}
		cfg := peersync.Config{
			Self:         id,
			Store:        n.st,
			Peers:        c.net.Peers(id, ids...),
			Interval:     o.interval,
			TombstoneTTL: o.ttl,
			Now:          o.now,
			Logger:       logger,
			OnApply: func(ctx context.Context, rec store.Sealed) {
				n.onApply(ctx, rec)
				if o.onApply != nil {
					o.onApply(id, rec)
				}
			},
		}
		sy, err := peersync.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.sy = sy
		c.net.Attach(id, sy)
		c.nodes = append(c.nodes, n)
	}
	return c
}

func (c *cluster) node(id uint32) *node { return c.nodes[id-1] }

// run starts the syncers of ids (all when none named) until the test ends.
func (c *cluster) run(ids ...uint32) {
	if len(ids) == 0 {
		for _, n := range c.nodes {
			ids = append(ids, n.id)
		}
	}
	for _, id := range ids {
		sy := c.node(id).sy
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sy.Run(ctx) }()
		c.t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				c.t.Errorf("Run of node %d: %v", id, err)
			}
		})
	}
}

// put writes on one node and announces it.
func (c *cluster) put(id uint32, kind store.Kind, key string, data []byte) store.Version {
	c.t.Helper()
	n := c.node(id)
	v, err := n.st.Put(context.Background(), kind, key, data)
	if err != nil {
		c.t.Fatal(err)
	}
	n.sy.Notify(peersync.Key{Kind: kind, ID: key})
	return v
}

// eventually calls cond until it returns nil, failing the test with its last
// error after a deadline. It polls; it does not pace the system under test.
func eventually(t testing.TB, cond func() error) {
	t.Helper()
	if err := testwait.Eventually(t.Context(), 15*time.Second, 2*time.Millisecond, cond); err != nil {
		t.Fatalf("condition not met before the deadline: %v", err)
	}
}

// metas returns a store's metadata by key.
func metas(t testing.TB, st *store.Store) map[peersync.Key]peersync.Meta {
	t.Helper()
	out := make(map[peersync.Key]peersync.Meta)
	err := st.Versions(context.Background(), func(kind store.Kind, id string, v store.Version, tomb bool) error {
		k := peersync.Key{Kind: kind, ID: id}
		out[k] = peersync.Meta{Key: k, Version: v, Tombstone: tomb}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// write is one acknowledged write of the model.
type write struct {
	meta peersync.Meta
	data []byte
}

// model keeps, per key, the last-writer-wins winner among acknowledged
// writes.
type model map[peersync.Key]write

func (m model) record(w write) {
	if old, ok := m[w.meta.Key]; !ok || w.meta.Version.Compare(old.meta.Version) > 0 {
		m[w.meta.Key] = w
	}
}

// verify checks that a store holds exactly the model's winners: same keys,
// versions and tombstones, and the winner's data for live records.
func (m model) verify(ctx context.Context, n *node) error {
	got := make(map[peersync.Key]peersync.Meta)
	err := n.st.Versions(ctx, func(kind store.Kind, id string, v store.Version, tomb bool) error {
		k := peersync.Key{Kind: kind, ID: id}
		got[k] = peersync.Meta{Key: k, Version: v, Tombstone: tomb}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for k, w := range m {
		g, ok := got[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("node %d lacks %s (want %s tomb=%v)", n.id, k, w.meta.Version, w.meta.Tombstone))
			continue
		case g != w.meta:
			errs = append(errs, fmt.Errorf("node %d has %s at %s tomb=%v, want %s tomb=%v",
				n.id, k, g.Version, g.Tombstone, w.meta.Version, w.meta.Tombstone))
			continue
		}
		rec, err := n.st.Get(ctx, k.Kind, k.ID)
		switch {
		case w.meta.Tombstone && !errors.Is(err, store.ErrNotFound):
			errs = append(errs, fmt.Errorf("node %d: Get of deleted %s = %v, want ErrNotFound", n.id, k, err))
		case !w.meta.Tombstone && err != nil:
			errs = append(errs, fmt.Errorf("node %d: Get %s: %v", n.id, k, err))
		case !w.meta.Tombstone && !bytes.Equal(rec.Data, w.data):
			errs = append(errs, fmt.Errorf("node %d: %s data %x, want %x", n.id, k, rec.Data, w.data))
		}
	}
	for k := range got {
		if _, ok := m[k]; !ok {
			errs = append(errs, fmt.Errorf("node %d has %s, never written", n.id, k))
		}
	}
	if len(errs) > 5 {
		errs = append(slices.Clip(errs[:5]), fmt.Errorf("and %d more", len(errs)-5))
	}
	return errors.Join(errs...)
}

// converged checks every node against the model.
func (c *cluster) converged(m model) error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, m.verify(context.Background(), n))
	}
	return errors.Join(errs...)
}
