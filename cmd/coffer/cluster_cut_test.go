package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

// TestClusterCutCatchUp: the link between two HSMs is cut (fault proxies,
// both ways) while keys and a user are made through HSM 1; from 1 s after
// the link heals, HSM 2, asked alone, answers as one that has them all: the
// user logs in at the first try, a search lists every key and each key
// encrypts. No waiting, no second try.
func TestClusterCutCatchUp(t *testing.T) {
	const (
		writers = 8
		perW    = 100
		settle  = time.Second
	)
	c := newCluster(t, 1, 2)
	p12 := newFaultProxy(t, loopbackOf(2), c.addr(2))
	p21 := newFaultProxy(t, loopbackOf(1), c.addr(1))
	for id, to := range map[uint32]*faultProxy{1: p12, 2: p21} {
		c.editConfig(t, id, func(f *hsmFile) {
			for i := range f.Peers {
				f.Peers[i].Address = to.Addr()
			}
		})
	}
	c.startAll(t, 1, 2)
	admin := c.activate(t, 1)
	c.loginWhenKnown(t, 2, "crypto-user", testCU, testCUPW)
	s := loginT(t, c.dial(t, 1, 1), "crypto-user", testCU, testCUPW)
	ctx := t.Context()

	p12.Cut()
	p21.Cut()
	var (
		mu   sync.Mutex
		keys []client.ObjectID
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perW {
				id, err := s.GenerateKey(ctx, mechAESKeyGen, aesTokenTemplate(fmt.Sprintf("cut-%d-%d", w, i)))
				if err != nil {
					t.Errorf("create during the cut: %v", err)
					return
				}
				mu.Lock()
				keys = append(keys, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const bob, bobPW = "bob", "bob-password-1"
	if err := admin.CreateUser(ctx, bob, "crypto-user", bobPW, nil); err != nil {
		t.Fatalf("create bob during the cut: %v", err)
	}
	p12.Pass()
	p21.Pass()
	healed := time.Now()
	t.Logf("%d keys and user %s made through HSM 1 during the cut; healed", len(keys), bob)

	select {
	case <-time.After(time.Until(healed.Add(settle))):
	case <-ctx.Done():
	}
	cl := c.dial(t, 1, 2)
	if err := loginOnce(ctx, cl, "crypto-user", bob, bobPW); err != nil {
		t.Errorf("%s, %s after the heal, on HSM 2: %v", bob, time.Since(healed).Round(time.Millisecond), err)
	}
	one := loginT(t, cl, "crypto-user", testCU, testCUPW)
	have, err := listTokenObjects(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	if m := missingIDs(keys, have); len(m) > 0 {
		t.Errorf("HSM 2, %s after the heal: a search misses %d of %d keys made during the cut", time.Since(healed).Round(time.Millisecond), len(m), len(keys))
	}
	for _, id := range keys {
		if _, err := one.Encrypt(ctx, id, gcmMech([]byte("twelve bytes")), []byte("m")); err != nil {
			t.Errorf("HSM 2: key %x not usable: %v", id, err)
			break
		}
	}
	if !t.Failed() {
		t.Logf("HSM 2 answered complete from %s after the heal", settle)
	}
}
