package peersync_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// TestFuzzyConvergence runs a random history of puts, deletes and
// replications on random nodes while links are cut, delayed and healed, in
// the manner of hashicorp/raft's fuzzy tests. Then it heals everything and
// verifies that every store converges on the model: each key's last writer
// (among acknowledged writes) everywhere, deletions as tombstones, nothing
// else; and that no acknowledged replication was lost.
func TestFuzzyConvergence(t *testing.T) {
	for _, tc := range []struct {
		seed       uint64
		nodes      int
		queueLimit int // 0: default; small: queues overflow, anti-entropy repairs
	}{
		{1, 3, 0}, {2, 4, 0}, {3, 5, 0}, {4, 3, 2}, {5, 5, 3}, {6, 4, 1},
	} {
		t.Run(fmt.Sprintf("seed=%d/nodes=%d/queue=%d", tc.seed, tc.nodes, tc.queueLimit), func(t *testing.T) {
			fuzzyHistory(t, tc.seed, tc.nodes, tc.queueLimit, 300)
		})
	}
}

func fuzzyHistory(t *testing.T, seed uint64, nodes, queueLimit, steps int) {
	c := newCluster(t, clusterOpts{nodes: nodes, interval: 5 * time.Millisecond})
	if queueLimit > 0 {
		for _, n := range c.nodes {
			n.sy.SetQueueLimitForTest(queueLimit)
		}
	}
	c.run()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ctx := t.Context()
	m := model{}
	randNode := func() uint32 { return uint32(rng.IntN(nodes) + 1) }
	randPair := func() (uint32, uint32) {
		a := randNode()
		b := uint32((int(a)+rng.IntN(nodes-1))%nodes + 1) // != a
		return a, b
	}
	randKey := func() peersync.Key {
		return peersync.Key{Kind: store.Kind(rng.IntN(3) + 1), ID: fmt.Sprintf("key-%d", rng.IntN(8))}
	}
	var log []string // the history, printed on failure
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("history (seed %d):\n%v", seed, log)
		}
	})
	for step := range steps {
		switch r := rng.IntN(100); {
		case r < 45:
			id, k := randNode(), randKey()
			data := fmt.Appendf(nil, "step %d on %d", step, id)
			w := putW(c, id, k, string(data))
			m.record(w)
			log = append(log, fmt.Sprintf("put %s on %d at %s", k, id, w.meta.Version))
		case r < 65:
			id, k := randNode(), randKey()
			v, err := c.node(id).st.Delete(ctx, k.Kind, k.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			c.node(id).sy.Notify(k)
			m.record(write{peersync.Meta{Key: k, Version: v, Tombstone: true}, nil})
			log = append(log, fmt.Sprintf("delete %s on %d at %s", k, id, v))
		case r < 72:
			replicateStep(t, c, rng, randNode(), randKey(), &log)
		case r < 82:
			a, b := randPair()
			c.net.Cut(a, b)
			log = append(log, fmt.Sprintf("cut %d-%d", a, b))
		case r < 86:
			id := randNode()
			c.net.Isolate(id)
			log = append(log, fmt.Sprintf("isolate %d", id))
		case r < 94:
			a, b := randPair()
			c.net.Heal(a, b)
			log = append(log, fmt.Sprintf("heal %d-%d", a, b))
		case r < 97:
			c.net.HealAll()
			log = append(log, "heal all")
		default:
			a, b := randPair()
			d := time.Duration(rng.IntN(3)+1) * time.Millisecond
			c.net.Delay(a, b, d)
			log = append(log, fmt.Sprintf("delay %d-%d %s", a, b, d))
		}
	}
	c.net.HealAll()
	log = append(log, "heal all (end)")
	eventually(t, func() error { return c.converged(m) })
	eventually(t, func() error { return lagZero(c) })
}

// replicateStep replicates k from node id and checks that every peer it
// names holds k at least at the version id had before the call.
func replicateStep(t *testing.T, c *cluster, rng *rand.Rand, id uint32, k peersync.Key, log *[]string) {
	t.Helper()
	before, ok := metas(t, c.node(id).st)[k]
	if !ok {
		return
	}
	need := rng.IntN(len(c.nodes)-1) + 1
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	ids, err := c.node(id).sy.Replicate(ctx, k, need)
	*log = append(*log, fmt.Sprintf("replicate %s from %d need %d: %v %v", k, id, need, ids, err))
	if err == nil && len(ids) < need {
		t.Fatalf("Replicate returned %v without error, need %d", ids, need)
	}
	if err != nil && !errors.Is(err, peersync.ErrTooFewPeers) {
		t.Fatalf("Replicate: %v", err)
	}
	for _, p := range ids {
		got, ok := metas(t, c.node(p).st)[k]
		if !ok || got.Version.Compare(before.Version) < 0 {
			t.Fatalf("Replicate said node %d stored %s, it has %+v (present %v), want >= %s", p, k, got, ok, before.Version)
		}
	}
}
