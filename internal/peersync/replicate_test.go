package peersync_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// TestReplicate runs Replicate from node 1 of 4 (3 peers) with no syncer
// running, so only Replicate moves the record.
func TestReplicate(t *testing.T) {
	const hang = time.Hour // a delay no test waits out
	for _, tc := range []struct {
		name     string
		links    func(c *cluster)
		need     int
		timeout  time.Duration // of the call's context
		wantIDs  []uint32      // sorted
		wantErrs []error
	}{
		{name: "all up, need all", need: 3, wantIDs: []uint32{2, 3, 4}},
		{name: "all up, need one", need: 1, wantIDs: nil}, // any one (or more, if they raced)
		{
			name:    "returns after need acks, not waiting for a slow peer",
			links:   func(c *cluster) { c.net.Delay(1, 4, hang) },
			need:    2,
			timeout: 10 * time.Second, // must return before this ends
			wantIDs: []uint32{2, 3},
		},
		{
			name:     "partitioned peer: all answered, too few",
			links:    func(c *cluster) { c.net.Cut(1, 4) },
			need:     3,
			wantIDs:  []uint32{2, 3},
			wantErrs: []error{peersync.ErrTooFewPeers},
		},
		{
			name:     "hung peer: context deadline, too few",
			links:    func(c *cluster) { c.net.Delay(1, 4, hang) },
			need:     3,
			timeout:  time.Second,
			wantIDs:  []uint32{2, 3},
			wantErrs: []error{peersync.ErrTooFewPeers, context.DeadlineExceeded},
		},
		{
			name:     "need more than there are peers",
			need:     4,
			wantIDs:  []uint32{2, 3, 4},
			wantErrs: []error{peersync.ErrTooFewPeers},
		},
		{
			name: "answer lost: stored but not acknowledged",
			// Requests reach 4, its answers do not come back.
			links:    func(c *cluster) { c.net.CutOneWay(4, 1) },
			need:     3,
			wantIDs:  []uint32{2, 3},
			wantErrs: []error{peersync.ErrTooFewPeers},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{nodes: 4})
			c.node(1).sy.SetPeerTimeoutForTest(hang)
			k := peersync.Key{Kind: store.KindObject, ID: "fresh"}
			v := c.put(1, k.Kind, k.ID, []byte("key material"))
			if tc.links != nil {
				tc.links(c)
			}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			ids, err := c.node(1).sy.Replicate(ctx, k, tc.need)
			for _, want := range tc.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
			if len(tc.wantErrs) == 0 && err != nil {
				t.Errorf("err = %v", err)
			}
			if len(tc.wantErrs) == 0 && ctx.Err() != nil {
				t.Errorf("returned only once its context ended (%v)", ctx.Err())
			}
			if len(ids) < min(tc.need, 3) && len(tc.wantErrs) == 0 {
				t.Errorf("stored on %v, need %d", ids, tc.need)
			}
			got := slices.Sorted(slices.Values(ids))
			if tc.wantIDs != nil && !slices.Equal(got, tc.wantIDs) {
				t.Errorf("stored on %v, want %v", got, tc.wantIDs)
			}
			// Every peer named holds the record at v.
			for _, id := range ids {
				if m, ok := metas(t, c.node(id).st)[k]; !ok || m.Version != v {
					t.Errorf("node %d: record %+v (present %v), want version %s", id, m, ok, v)
				}
			}
		})
	}
}

// TestReplicateQueuesTheRest: peers that did not store the record during
// Replicate get it from the send queue once they are back.
func TestReplicateQueuesTheRest(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, interval: time.Hour})
	c.net.Isolate(3)
	k := peersync.Key{Kind: store.KindObject, ID: "fresh"}
	m := model{}
	m.record(putW(c, 1, k, "key material"))
	ids, err := c.node(1).sy.Replicate(t.Context(), k, 1)
	if err != nil || !slices.Equal(ids, []uint32{2}) {
		t.Fatalf("Replicate = %v, %v; want [2]", ids, err)
	}
	c.run(1)
	if err := c.node(1).sy.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.net.Rejoin(3)
	// The first round is over and the next is an hour away: only the queue
	// can deliver it now.
	eventually(t, func() error { return m.verify(t.Context(), c.node(3)) })
}

func TestReplicateMissingKey(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	_, err := c.node(1).sy.Replicate(t.Context(), peersync.Key{Kind: store.KindObject, ID: "nope"}, 1)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replicate = %v, want ErrNotFound", err)
	}
}
