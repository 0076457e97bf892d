package peersync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/peersync/memnet"
	"github.com/coffer-hsm/coffer/internal/store"
)

func TestConfigValidate(t *testing.T) {
	net := memnet.New()
	st := openStore(t, 1, newMK(t), nil)
	for _, tc := range []struct {
		name    string
		cfg     peersync.Config
		wantErr string // "" means valid
	}{
		{"minimal", peersync.Config{Self: 1, Store: st}, ""},
		{"with peers", peersync.Config{Self: 1, Store: st, Peers: net.Peers(1, 1, 2, 3)}, ""},
		{"zero self", peersync.Config{Store: st}, "Self is zero"},
		{"no store", peersync.Config{Self: 1}, "Store is nil"},
		{"nil peer", peersync.Config{Self: 1, Store: st, Peers: []peersync.Peer{nil}}, "Peers[0] is nil"},
		{"peer is self", peersync.Config{Self: 1, Store: st, Peers: []peersync.Peer{net.Peer(1, 1)}}, "this node's id"},
		{"peer id zero", peersync.Config{Self: 1, Store: st, Peers: []peersync.Peer{net.Peer(1, 0)}}, "id zero"},
		{"duplicate peer", peersync.Config{Self: 1, Store: st, Peers: []peersync.Peer{net.Peer(1, 2), net.Peer(1, 2)}}, "appears twice"},
		{"negative interval", peersync.Config{Self: 1, Store: st, Interval: -1}, "Interval"},
		{"too many buckets", peersync.Config{Self: 1, Store: st, Buckets: peersync.MaxBuckets + 1}, "Buckets"},
		{"negative ttl", peersync.Config{Self: 1, Store: st, TombstoneTTL: -time.Second}, "TombstoneTTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			_, nerr := peersync.New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil || nerr != nil {
					t.Fatalf("Validate = %v, New = %v; want valid", err, nerr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error about %q", err, tc.wantErr)
			}
			if nerr == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

// TestBucket pins the bucket function: nodes of different versions compare
// digests, so it must never change.
func TestBucket(t *testing.T) {
	for _, tc := range []struct {
		key     peersync.Key
		buckets int
		want    int
	}{
		{peersync.Key{Kind: store.KindObject, ID: "key-1"}, 256, 169},
		{peersync.Key{Kind: store.KindUser, ID: "admin"}, 256, 244},
		{peersync.Key{Kind: store.KindSetting, ID: "cluster"}, 65536, 52180},
		{peersync.Key{Kind: store.KindObject, ID: "key-1"}, 7, 6},
		{peersync.Key{Kind: store.KindObject, ID: "key-1"}, 1, 0},
		{peersync.Key{Kind: store.KindObject, ID: "key-1"}, 0, 0},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.key, tc.buckets), func(t *testing.T) {
			if got := peersync.Bucket(tc.key, tc.buckets); got != tc.want {
				t.Errorf("Bucket = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 1})
	c.run()
	if err := c.node(1).sy.WaitReady(t.Context()); err != nil { // Run has started
		t.Fatal(err)
	}
	if err := c.node(1).sy.Run(t.Context()); !errors.Is(err, peersync.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

// TestPushConverges: a write announced with Notify reaches every peer and
// is handed to OnApply there, once.
func TestPushConverges(t *testing.T) {
	// A long interval: anti-entropy runs once at start, the push does the rest.
	c := newCluster(t, clusterOpts{nodes: 3, interval: time.Hour})
	c.run()
	for _, n := range c.nodes {
		if err := n.sy.WaitReady(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// An invalid key must not poison the queues.
	c.node(1).sy.Notify(peersync.Key{Kind: 0, ID: "bad"})
	m := model{}
	for i := range 20 {
		id := fmt.Sprintf("key-%d", i)
		data := []byte("v1-" + id)
		v := c.put(uint32(i%3+1), store.KindObject, id, data)
		m.record(write{peersync.Meta{Key: peersync.Key{Kind: store.KindObject, ID: id}, Version: v}, data})
	}
	eventually(t, func() error { return c.converged(m) })
	// Each node wrote a third of the keys and applied the other two thirds.
	// OnApply runs just after the store committed: wait for it.
	appliedAll := func() error {
		for _, n := range c.nodes {
			if got, want := n.appliedCount(), 20-len(filterWrittenBy(m, n.id)); got != want {
				return fmt.Errorf("node %d: OnApply called %d times, want %d", n.id, got, want)
			}
		}
		return nil
	}
	eventually(t, appliedAll)
	eventually(t, func() error { return lagZero(c) })
	if err := appliedAll(); err != nil { // and no more since
		t.Fatal(err)
	}
}

func filterWrittenBy(m model, id uint32) []write {
	var out []write
	for _, w := range m {
		if w.meta.Version.Node == id {
			out = append(out, w)
		}
	}
	return out
}

func lagZero(c *cluster) error {
	for _, n := range c.nodes {
		for peer, lag := range n.sy.Lag() {
			if lag != 0 {
				return fmt.Errorf("node %d: lag to %d is %s", n.id, peer, lag)
			}
		}
	}
	return nil
}

// TestLastWriterWins: after a partition heals, the newer write wins, be it
// a tombstone or a put.
func TestLastWriterWins(t *testing.T) {
	key := peersync.Key{Kind: store.KindObject, ID: "k"}
	for _, tc := range []struct {
		name string
		// first and second run on opposite sides of a partition, in order.
		first, second func(c *cluster) write
	}{
		{
			name:   "tombstone beats older put",
			first:  func(c *cluster) write { return putW(c, 2, key, "from 2") },
			second: func(c *cluster) write { return delW(c, 1, key) },
		},
		{
			name:   "newer put beats tombstone",
			first:  func(c *cluster) write { return delW(c, 1, key) },
			second: func(c *cluster) write { return putW(c, 2, key, "from 2") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newCluster(t, clusterOpts{nodes: 3, now: clock.Now})
			m := model{}
			m.record(putW(c, 1, key, "original"))
			if err := c.node(1).sy.RoundForTest(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := c.converged(m); err != nil {
				t.Fatal(err)
			}
			c.net.Cut(1, 2)
			clock.Advance(time.Second)
			m.record(tc.first(c))
			clock.Advance(time.Second)
			m.record(tc.second(c))
			c.net.HealAll()
			c.run()
			eventually(t, func() error { return c.converged(m) })
		})
	}
}

func putW(c *cluster, id uint32, k peersync.Key, data string) write {
	v := c.put(id, k.Kind, k.ID, []byte(data))
	return write{peersync.Meta{Key: k, Version: v}, []byte(data)}
}

func delW(c *cluster, id uint32, k peersync.Key) write {
	c.t.Helper()
	n := c.node(id)
	v, err := n.st.Delete(context.Background(), k.Kind, k.ID)
	if err != nil {
		c.t.Fatal(err)
	}
	n.sy.Notify(k)
	return write{peersync.Meta{Key: k, Version: v, Tombstone: true}, nil}
}

// TestQueueOverflow: Notify never blocks; a queue that overflows while its
// peer is down is dropped, Lag keeps counting from the oldest lost change,
// and anti-entropy repairs the peer once it is back.
func TestQueueOverflow(t *testing.T) {
	clock := newFakeClock()
	c := newCluster(t, clusterOpts{nodes: 3, now: clock.Now})
	const limit = 4
	c.node(1).sy.SetQueueLimitForTest(limit)
	c.net.Isolate(2)
	m := model{}
	for i := range 3 * limit {
		m.record(putW(c, 1, peersync.Key{Kind: store.KindObject, ID: fmt.Sprintf("k%d", i)}, fmt.Sprint(i)))
		clock.Advance(time.Second)
	}
	// Not running yet: nothing was sent, the queue holds what is left after
	// the drops.
	if q := c.node(1).sy.QueuedForTest(2); q >= limit {
		t.Errorf("queue for the isolated peer holds %d keys, limit %d", q, limit)
	}
	if lag := c.node(1).sy.Lag()[2]; lag != time.Duration(3*limit)*time.Second {
		t.Errorf("lag to the isolated peer = %s, want %s (the first write)", lag, time.Duration(3*limit)*time.Second)
	}
	c.run()
	eventually(t, func() error {
		if lag := c.node(1).sy.Lag()[3]; lag != 0 {
			return fmt.Errorf("lag to node 3 is %s", lag)
		}
		return m.verify(t.Context(), c.node(3))
	})
	if lag := c.node(1).sy.Lag()[2]; lag == 0 {
		t.Error("lag to the isolated peer dropped to zero")
	}
	c.net.Rejoin(2)
	eventually(t, func() error { return c.converged(m) })
	eventually(t, func() error { return lagZero(c) })
}

// TestForeignMaskingKey: records sealed under another masking key are
// refused, by push and by anti-entropy, and nothing is stored.
func TestForeignMaskingKey(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2, mk: map[uint32][]byte{2: newMK(t)}})
	k := peersync.Key{Kind: store.KindObject, ID: "k"}
	putW(c, 1, k, "secret")
	rec, err := c.node(1).st.Export(t.Context(), k.Kind, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("push", func(t *testing.T) {
		applied, err := c.net.Peer(1, 2).Push(t.Context(), []store.Sealed{rec})
		if !errors.Is(err, store.ErrBadBox) || applied != 0 {
			t.Fatalf("Push = %d, %v; want 0, ErrBadBox", applied, err)
		}
	})
	t.Run("replicate", func(t *testing.T) {
		ids, err := c.node(1).sy.Replicate(t.Context(), k, 1)
		if !errors.Is(err, peersync.ErrTooFewPeers) || len(ids) != 0 {
			t.Fatalf("Replicate = %v, %v; want none, ErrTooFewPeers", ids, err)
		}
	})
	t.Run("anti-entropy pull", func(t *testing.T) {
		if err := c.node(2).sy.RoundForTest(t.Context()); !errors.Is(err, store.ErrBadBox) {
			t.Fatalf("round on node 2 = %v, want ErrBadBox", err)
		}
	})
	if got := metas(t, c.node(2).st); len(got) != 0 {
		t.Errorf("node 2 stored %v", got)
	}
	if n := c.node(2).appliedCount(); n != 0 {
		t.Errorf("OnApply called %d times on node 2", n)
	}
}

// TestHandlers covers the serving side's bounds and its answer to a stale
// push.
func TestHandlers(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	k := peersync.Key{Kind: store.KindObject, ID: "k"}
	putW(c, 1, k, "v1")
	old, err := c.node(1).st.Export(t.Context(), k.Kind, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.node(2).sy.HandlePush(t.Context(), 1, []store.Sealed{old}); err != nil {
		t.Fatal(err)
	}
	putW(c, 2, k, "v2") // node 2 is now newer
	sy := c.node(2).sy
	ctx := t.Context()

	t.Run("stale push succeeds, applies nothing", func(t *testing.T) {
		n, err := sy.HandlePush(ctx, 1, []store.Sealed{old})
		if err != nil || n != 0 {
			t.Fatalf("HandlePush = %d, %v; want 0, nil", n, err)
		}
	})
	t.Run("equal push succeeds, applies nothing", func(t *testing.T) {
		cur, err := c.node(2).st.Export(ctx, k.Kind, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := c.node(1).sy.HandlePush(ctx, 2, []store.Sealed{cur}); err != nil || n != 1 {
			t.Fatalf("first HandlePush = %d, %v; want 1, nil", n, err)
		}
		if n, err := c.node(1).sy.HandlePush(ctx, 2, []store.Sealed{cur}); err != nil || n != 0 {
			t.Fatalf("second HandlePush = %d, %v; want 0, nil", n, err)
		}
	})
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"digest zero buckets", func() error { _, err := sy.HandleDigest(ctx, 0); return err }},
		{"digest too many buckets", func() error { _, err := sy.HandleDigest(ctx, peersync.MaxBuckets+1); return err }},
		{"versions bucket out of range", func() error { _, err := sy.HandleVersions(ctx, 4, []int{4}); return err }},
		{"versions negative bucket", func() error { _, err := sy.HandleVersions(ctx, 4, []int{-1}); return err }},
		{"fetch invalid kind", func() error { _, err := sy.HandleFetch(ctx, []peersync.Key{{Kind: 0, ID: "x"}}); return err }},
		{"fetch empty id", func() error { _, err := sy.HandleFetch(ctx, []peersync.Key{{Kind: store.KindObject}}); return err }},
		{"fetch too many", func() error { _, err := sy.HandleFetch(ctx, make([]peersync.Key, 5000)); return err }},
		{"push too many", func() error { _, err := sy.HandlePush(ctx, 1, make([]store.Sealed, 5000)); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, peersync.ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
	t.Run("fetch skips missing keys", func(t *testing.T) {
		recs, err := sy.HandleFetch(ctx, []peersync.Key{{Kind: store.KindObject, ID: "missing"}, k})
		if err != nil || len(recs) != 1 || recs[0].ID != k.ID {
			t.Fatalf("HandleFetch = %v, %v; want the one record", recs, err)
		}
	})
}
