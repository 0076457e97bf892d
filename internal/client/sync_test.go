package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Creation calls carry the larger of the configured and the per-call
// minimum (seed 002).
func TestMinNodesLargerWins(t *testing.T) {
	w, pki := newFakeCluster(t, 3)
	creations := []struct {
		method string
		create func(ctx context.Context, s *Session, base ObjectID, opts ...CreateOption) error
	}{
		{"GenerateKey", func(ctx context.Context, s *Session, _ ObjectID, opts ...CreateOption) error {
			_, err := s.GenerateKey(ctx, aesGen, tokenOn, opts...)
			return err
		}},
		{"GenerateKeyPair", func(ctx context.Context, s *Session, _ ObjectID, opts ...CreateOption) error {
			_, _, err := s.GenerateKeyPair(ctx, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN}, tokenOn, tokenOn, opts...)
			return err
		}},
		{"CreateObject", func(ctx context.Context, s *Session, _ ObjectID, opts ...CreateOption) error {
			_, err := s.CreateObject(ctx, tokenOn, opts...)
			return err
		}},
		{"ImportKey", func(ctx context.Context, s *Session, _ ObjectID, opts ...CreateOption) error {
			_, err := s.ImportKey(ctx, PKCS8, []byte("der"), tokenOn, opts...)
			return err
		}},
		{"UnwrapKey", func(ctx context.Context, s *Session, base ObjectID, opts ...CreateOption) error {
			_, err := s.UnwrapKey(ctx, base, Mechanism{Type: ck.CKM_AES_KEY_WRAP}, []byte("w"), tokenOn, opts...)
			return err
		}},
		{"DeriveKey", func(ctx context.Context, s *Session, base ObjectID, opts ...CreateOption) error {
			_, err := s.DeriveKey(ctx, base, Mechanism{Type: ck.CKM_ECDH1_DERIVE}, tokenOn, opts...)
			return err
		}},
	}
	for _, tc := range []struct {
		name string
		cfg  int
		opts []CreateOption
		want uint32
	}{
		{"default", 0, nil, 1},
		{"config", 2, nil, 2},
		{"config wins over a smaller option", 3, []CreateOption{MinNodes(1)}, 3},
		{"option wins over a smaller config", 1, []CreateOption{MinNodes(3)}, 3},
		{"zero option", 2, []CreateOption{MinNodes(0)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(w, pki)
			cfg.CreateObjectMinimumNodes = tc.cfg
			c := dial(t, cfg)
			s := login(t, c)
			base := replicatedKey(t, s, 3)
			for _, cr := range creations {
				for _, f := range w.servers {
					f.mu.Lock()
					f.minNodes = nil
					f.mu.Unlock()
				}
				if err := cr.create(t.Context(), s, base, tc.opts...); err != nil {
					t.Fatalf("%s: %v", cr.method, err)
				}
				var got []uint32
				for _, f := range w.servers {
					f.mu.Lock()
					got = append(got, f.minNodes...)
					f.mu.Unlock()
				}
				if len(got) != 1 || got[0] != tc.want {
					t.Errorf("%s sent min_nodes %v, want [%d]", cr.method, got, tc.want)
				}
			}
		})
	}
}

// A fresh key held by fewer HSMs than the cluster has is used only there,
// with no failure, until the window passes.
func TestFreshKeyRouting(t *testing.T) {
	w, pki := newFakeCluster(t, 3)
	var clockMu sync.Mutex
	now := time.Unix(1_000_000, 0)
	cfg := testConfig(w, pki)
	cfg.Now = func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	c := dial(t, cfg)
	s := login(t, c)

	signs := func() []int {
		out := make([]int, len(w.servers))
		for i, f := range w.servers {
			out[i] = f.count("Sign")
		}
		return out
	}
	for _, minNodes := range []int{1, 2} {
		key, err := s.GenerateKey(t.Context(), aesGen, tokenOn, MinNodes(minNodes))
		if err != nil {
			t.Fatal(err)
		}
		before := signs()
		for range 60 {
			if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
				t.Fatalf("min_nodes %d: Sign on a fresh key: %v", minNodes, err)
			}
		}
		after := signs()
		holders := 0
		for i, f := range w.servers {
			n := after[i] - before[i]
			if n > 0 != f.w.holds(f, uint64(key)) {
				t.Fatalf("min_nodes %d: HSM %d served %d signatures; holds the key: %v", minNodes, f.nodeID, n, f.w.holds(f, uint64(key)))
			}
			if n > 0 {
				holders++
			}
		}
		if holders != minNodes {
			t.Fatalf("min_nodes %d: %d HSMs used", minNodes, holders)
		}
	}

	// Once sync has converged (the window passed), the key is used anywhere.
	key, err := s.GenerateKey(t.Context(), aesGen, tokenOn)
	if err != nil {
		t.Fatal(err)
	}
	w.replicate(uint64(key))
	clockMu.Lock()
	now = now.Add(DefaultFreshObjectWindow)
	clockMu.Unlock()
	before := signs()
	for range 60 {
		if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range signs() {
		if n == before[i] {
			t.Errorf("HSM %d not used after the window", i+1)
		}
	}
}

// An HSM that lists a fresh object proves it holds it; FindObjects finds a
// fresh object even when the HSM it asks first does not have it yet.
func TestFreshObjectFoundAndConverged(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	undo := steer(c, 1)
	key, err := s.GenerateKey(t.Context(), aesGen, tokenOn)
	undo()
	if err != nil {
		t.Fatal(err)
	}
	if _, fresh := c.fresh.holders([]ObjectID{key}); !fresh {
		t.Fatal("new key not in the fresh table")
	}
	undo = steer(c, 0)
	ids, err := s.FindObjects(t.Context(), nil)
	undo()
	if err != nil || !slices.Contains(ids, key) {
		t.Fatalf("FindObjects = %v, %v; want it to contain %d", ids, err, key)
	}
	if w.servers[0].count("FindObjects") != 1 || w.servers[1].count("FindObjects") != 1 {
		t.Fatal("FindObjects did not ask both HSMs")
	}
	if _, fresh := c.fresh.holders([]ObjectID{key}); !fresh {
		t.Fatal("key converged although HSM 1 does not list it")
	}

	w.replicate(uint64(key))
	undo = steer(c, 0)
	if _, err := s.FindObjects(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	undo()
	if _, fresh := c.fresh.holders([]ObjectID{key}); fresh {
		t.Fatal("key still fresh after every HSM listed it")
	}
}

// A session object lives on one HSM: used only there, forever, and lost
// with that HSM.
func TestSessionObjects(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	undo := steer(c, 1)
	key, err := s.GenerateKey(t.Context(), aesGen, nil) // CKA_TOKEN defaults to false
	undo()
	if err != nil {
		t.Fatal(err)
	}
	if _, fresh := c.fresh.holders([]ObjectID{key}); fresh {
		t.Fatal("a session object went to the fresh table")
	}
	defer steer(c, 0)()
	for range 10 {
		if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	if w.servers[0].count("Sign") != 0 {
		t.Fatal("a session object was used on another HSM")
	}
	ids, err := s.FindObjects(t.Context(), nil)
	if err != nil || !slices.Contains(ids, key) {
		t.Fatalf("FindObjects = %v, %v; want the session object %d", ids, err, key)
	}

	w.servers[1].stop()
	if _, err := s.FindObjects(t.Context(), nil); err != nil { // finds HSM 1 down
		t.Fatal(err)
	}
	// Force the discovery even if FindObjects did not ask HSM 1.
	c.markDown(c.live()[1], c.live()[1].epoch.Load(), errors.New("test"))
	_, err = s.Sign(t.Context(), key, hmac, []byte("m"))
	if Code(err) != ck.CKR_OBJECT_HANDLE_INVALID {
		t.Fatalf("Sign with a session object of a lost HSM = %v, want CKR_OBJECT_HANDLE_INVALID", err)
	}
	if w.servers[0].count("Sign") != 0 {
		t.Fatal("a lost session object was used on another HSM")
	}
}

func TestFreshTable(t *testing.T) {
	now := time.Unix(0, 0)
	tbl := newFreshTable(time.Minute, 4, func() time.Time { return now })
	const all = 0b111
	tbl.add(1, 0b001, all)
	tbl.add(2, 0b011, all)
	tbl.add(3, all, all) // held by every HSM: nothing to remember
	for _, tc := range []struct {
		ids   []ObjectID
		mask  uint64
		fresh bool
	}{
		{[]ObjectID{1}, 0b001, true},
		{[]ObjectID{2}, 0b011, true},
		{[]ObjectID{1, 2}, 0b001, true},
		{[]ObjectID{3}, 0, false},
		{nil, 0, false},
	} {
		if mask, fresh := tbl.holders(tc.ids); fresh != tc.fresh || fresh && mask != tc.mask {
			t.Errorf("holders(%v) = %b, %v; want %b, %v", tc.ids, mask, fresh, tc.mask, tc.fresh)
		}
	}
	if got := tbl.elsewhere(0b001); got != 0 {
		t.Errorf("elsewhere(HSM 0) = %b, want 0", got)
	}
	if got := tbl.elsewhere(0b100); got != 0b011 {
		t.Errorf("elsewhere(HSM 2) = %b, want 011", got)
	}
	tbl.seen([]ObjectID{2}, 0b100, all)
	if _, fresh := tbl.holders([]ObjectID{2}); fresh {
		t.Error("object seen on every HSM still fresh")
	}
	tbl.forget(1)
	if _, fresh := tbl.holders([]ObjectID{1}); fresh {
		t.Error("forgotten object still fresh")
	}

	// Bounded: the oldest entries go first.
	for id := ObjectID(10); id < 20; id++ {
		tbl.add(id, 0b001, all)
	}
	if n := len(tbl.entries); n > 4 {
		t.Fatalf("%d entries, limit 4", n)
	}
	if _, fresh := tbl.holders([]ObjectID{19}); !fresh {
		t.Error("newest entry evicted")
	}
	if _, fresh := tbl.holders([]ObjectID{10}); fresh {
		t.Error("oldest entry kept past the limit")
	}
	// Expiry.
	now = now.Add(time.Minute)
	if _, fresh := tbl.holders([]ObjectID{19}); fresh {
		t.Error("entry kept past the window")
	}
	tbl.add(30, 0b001, all)
	if len(tbl.entries) != 1 || len(tbl.order) != 1 {
		t.Errorf("after expiry: %d entries, %d queued; want 1, 1", len(tbl.entries), len(tbl.order))
	}
}
