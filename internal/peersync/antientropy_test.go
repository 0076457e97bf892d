package peersync_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// TestDigest: equal stores have equal digests; one changed record changes
// exactly its bucket, and Versions of that bucket lists it.
func TestDigest(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	ctx := t.Context()
	for i := range 50 {
		putW(c, 1, peersync.Key{Kind: store.Kind(i%3 + 1), ID: fmt.Sprintf("k%d", i)}, "x")
	}
	if err := c.node(1).sy.RoundForTest(ctx); err != nil {
		t.Fatal(err)
	}
	const buckets = 16
	d1, err := c.node(1).sy.HandleDigest(ctx, buckets)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := c.node(2).sy.HandleDigest(ctx, buckets)
	if err != nil {
		t.Fatal(err)
	}
	if len(d1) != buckets || len(d2) != buckets {
		t.Fatalf("digest lengths %d, %d; want %d", len(d1), len(d2), buckets)
	}
	for b := range buckets {
		if !bytes.Equal(d1[b], d2[b]) {
			t.Fatalf("bucket %d differs between equal stores", b)
		}
	}
	k := peersync.Key{Kind: store.KindObject, ID: "k0"}
	if _, err := c.node(2).st.Delete(ctx, k.Kind, k.ID); err != nil {
		t.Fatal(err)
	}
	d2, err = c.node(2).sy.HandleDigest(ctx, buckets)
	if err != nil {
		t.Fatal(err)
	}
	for b := range buckets {
		if differs, want := !bytes.Equal(d1[b], d2[b]), b == peersync.Bucket(k, buckets); differs != want {
			t.Errorf("bucket %d: differs = %v, want %v", b, differs, want)
		}
	}
	ms, err := c.node(2).sy.HandleVersions(ctx, buckets, []int{peersync.Bucket(k, buckets)})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		if peersync.Bucket(m.Key, buckets) != peersync.Bucket(k, buckets) {
			t.Errorf("Versions listed %s from another bucket", m.Key)
		}
		if m.Key == k {
			found = m.Tombstone
		}
	}
	if !found {
		t.Errorf("Versions of bucket %d = %v, want the tombstone of %s", peersync.Bucket(k, buckets), ms, k)
	}
}

// TestRoundRepairsBothSides: one round started by node 1 gives node 2 what
// only node 1 has and node 1 what only node 2 has, newest version winning.
func TestRoundRepairsBothSides(t *testing.T) {
	clock := newFakeClock()
	c := newCluster(t, clusterOpts{nodes: 2, now: clock.Now})
	m := model{}
	put := func(id uint32, key, data string) {
		// Written without Notify: only anti-entropy moves them.
		k := peersync.Key{Kind: store.KindObject, ID: key}
		v, err := c.node(id).st.Put(t.Context(), k.Kind, k.ID, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		m.record(write{peersync.Meta{Key: k, Version: v}, []byte(data)})
		clock.Advance(time.Millisecond)
	}
	for i := range 300 {
		put(uint32(i%2+1), fmt.Sprintf("only-%d", i), "x")
	}
	put(1, "both-newer-on-2", "old")
	put(2, "both-newer-on-2", "new")
	put(2, "both-newer-on-1", "old")
	put(1, "both-newer-on-1", "new")
	if err := c.node(1).sy.RoundForTest(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.converged(m); err != nil {
		t.Fatal(err)
	}
	if err := c.node(2).sy.RoundForTest(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.converged(m); err != nil {
		t.Fatalf("second round broke convergence: %v", err)
	}
}

// TestReady: a node started empty is Ready only once it pulled everything
// its reachable peers hold. The peers do not run, so nothing is pushed to it.
func TestReady(t *testing.T) {
	for _, tc := range []struct {
		name        string
		unreachable []uint32
	}{
		{"all peers up", nil},
		{"one peer unreachable", []uint32{3}},
		{"no peer reachable", []uint32{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{nodes: 4, interval: time.Hour})
			want := model{}
			reachable := func(id uint32) bool {
				for _, u := range tc.unreachable {
					if u == id {
						return false
					}
				}
				return true
			}
			for _, id := range []uint32{1, 2, 3} {
				for i := range 100 {
					w := putW(c, id, peersync.Key{Kind: store.KindObject, ID: fmt.Sprintf("n%d-%d", id, i)}, "x")
					if reachable(id) {
						want.record(w)
					}
				}
				if !reachable(id) {
					c.net.Cut(id, 4)
				}
			}
			sy := c.node(4).sy
			if sy.Ready() {
				t.Fatal("Ready before Run")
			}
			c.run(4)
			if err := sy.WaitReady(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !sy.Ready() {
				t.Fatal("WaitReady returned but Ready is false")
			}
			// No eventually: being Ready means having caught up.
			if err := want.verify(t.Context(), c.node(4)); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("no peers", func(t *testing.T) {
		c := newCluster(t, clusterOpts{nodes: 1})
		c.run()
		if err := c.node(1).sy.WaitReady(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTombstonePurge: a tombstone is purged only once it is older than the
// TTL and every peer has it, never while a peer is unreachable, and purged
// tombstones do not come back.
func TestTombstonePurge(t *testing.T) {
	clock := newFakeClock()
	const ttl = time.Hour
	c := newCluster(t, clusterOpts{nodes: 3, now: clock.Now, ttl: ttl})
	ctx := t.Context()
	old := peersync.Key{Kind: store.KindObject, ID: "old"}
	fresh := peersync.Key{Kind: store.KindObject, ID: "fresh"}
	round := func(ids ...uint32) []error {
		var errs []error
		for _, id := range ids {
			errs = append(errs, c.node(id).sy.RoundForTest(ctx))
		}
		return errs
	}
	// has reports which nodes hold a record of k, and whether a tombstone.
	has := func(k peersync.Key) string {
		var s string
		for _, n := range c.nodes {
			m, ok := metas(t, n.st)[k]
			switch {
			case !ok:
				s += "-"
			case m.Tombstone:
				s += "T"
			default:
				s += "L"
			}
		}
		return s
	}
	check := func(step string, k peersync.Key, want string) {
		t.Helper()
		if got := has(k); got != want {
			t.Fatalf("%s: %s on nodes 1,2,3 = %s, want %s (L live, T tombstone, - none)", step, k.ID, got, want)
		}
	}

	putW(c, 1, old, "x")
	round(1)
	check("put", old, "LLL")

	c.net.Isolate(3)
	delW(c, 1, old)
	if errs := round(1, 2); errs[0] == nil || errs[1] == nil {
		t.Fatalf("rounds with node 3 isolated = %v, want errors", errs)
	}
	check("delete while 3 is away", old, "TTL")

	clock.Advance(2 * ttl)
	round(1, 2)
	check("expired, but 3 unreachable", old, "TTL")

	c.net.Rejoin(3)
	putW(c, 1, fresh, "y")
	delW(c, 1, fresh)
	if err := errors.Join(round(1)...); err != nil {
		t.Fatal(err)
	}
	check("3 back: it gets the tombstone", old, "TTT")
	check("3 back", fresh, "TTT")

	if err := errors.Join(round(1)...); err != nil {
		t.Fatal(err)
	}
	check("every peer has it: purged on 1", old, "-TT")
	check("not expired: kept", fresh, "TTT")
	if err := errors.Join(round(1)...); err != nil {
		t.Fatal(err)
	}
	check("1 does not fetch back an expired tombstone", old, "-TT")

	if err := errors.Join(round(2, 3)...); err != nil {
		t.Fatal(err)
	}
	check("purged everywhere", old, "---")
	if err := errors.Join(round(1, 2, 3, 1)...); err != nil {
		t.Fatal(err)
	}
	check("purged tombstones stay purged", old, "---")
	check("not expired: still kept", fresh, "TTT")

	clock.Advance(2 * ttl)
	if err := errors.Join(round(2, 1, 3)...); err != nil {
		t.Fatal(err)
	}
	check("fresh one expired too", fresh, "---")
}
