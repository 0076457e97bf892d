package peersync_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// TestCatchUp: node 2 falls behind node 1 (isolated while node 1 writes
// objects, users and settings) and, once it can reach node 1 again, its
// CatchUp brings it level before it returns: from node 1's send queue, or
// by anti-entropy when that queue overflowed. Anti-entropy rounds are an
// hour away, so nothing else repairs it. (A node that can call its peer but
// not be called by it is node.TestCatchUpBeforeAnswer: memnet's links cut
// answers too.)
func TestCatchUp(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queueLimit int
	}{
		{"from the send queue", 0},
		{"queue overflowed", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{nodes: 2, interval: time.Hour})
			if tc.queueLimit > 0 {
				c.node(1).sy.SetQueueLimitForTest(tc.queueLimit)
			}
			c.run()
			for _, n := range c.nodes {
				if err := n.sy.WaitReady(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			c.net.Isolate(2)
			m := model{}
			for i := range 50 {
				kind := []store.Kind{store.KindObject, store.KindUser, store.KindSetting}[i%3]
				id, data := fmt.Sprintf("rec-%d", i), []byte(fmt.Sprintf("data %d", i))
				v := c.put(1, kind, id, data)
				m.record(write{peersync.Meta{Key: peersync.Key{Kind: kind, ID: id}, Version: v}, data})
			}
			c.net.Rejoin(2)
			if err := c.node(2).sy.CatchUp(t.Context()); err != nil {
				t.Fatalf("CatchUp: %v", err)
			}
			if err := m.verify(t.Context(), c.node(2)); err != nil {
				t.Fatalf("after CatchUp: %v", err)
			}
			if b := c.node(2).sy.Behind()[1]; !b.Known {
				t.Errorf("node 2 does not know how far behind node 1 it was: %+v", b)
			}
		})
	}
}

// TestCatchUpSkipsSilentPeer: a peer that does not answer a catch-up in
// time (frozen) is given up, and not waited for again until a call to it
// succeeds.
func TestCatchUpSkipsSilentPeer(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2, interval: time.Hour})
	c.run()
	for _, n := range c.nodes {
		if err := n.sy.WaitReady(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c.net.Delay(2, 1, time.Minute) // node 1 is there but never answers in time
	err := c.node(2).sy.CatchUp(t.Context())
	if err == nil {
		t.Fatal("CatchUp with a silent peer succeeded")
	}
	err = c.node(2).sy.CatchUp(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not waited for") {
		t.Fatalf("second CatchUp: %v, want the silent peer skipped", err)
	}
	c.net.Delay(2, 1, 0)
	if err := c.node(2).sy.RoundForTest(t.Context()); err != nil {
		t.Fatalf("round: %v", err)
	}
	if err := c.node(2).sy.CatchUp(t.Context()); err != nil {
		t.Fatalf("CatchUp once node 1 answers again: %v", err)
	}
}
