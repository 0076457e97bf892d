package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// TestClusterFaults: a client of three HSMs sees no failure while one of
// them is killed; then the link between the two others is cut and dropped
// by fault proxies, keys made on one side during the fault reach the other
// side once it heals, and a password change made during a cut holds.
//
// Node 1 reaches node 2 through proxy p12 (on 127.0.0.12) and node 2 reaches
// node 1 through p21 (on 127.0.0.11): both directions, because each node
// also pulls from the other in its own anti-entropy rounds; cutting only
// node 1's path to node 2 would not keep anything from node 2. Node 3 is the
// one killed, and stays down, so that it cannot relay either.
func TestClusterFaults(t *testing.T) {
	c := newCluster(t, 1, 2, 3)
	p12 := newFaultProxy(t, loopbackOf(2), c.addr(2))
	p21 := newFaultProxy(t, loopbackOf(1), c.addr(1))
	setPeer := func(id, peer uint32, addr string) {
		c.editConfig(t, id, func(f *hsmFile) {
			for i := range f.Peers {
				if f.Peers[i].ID == peer {
					f.Peers[i].Address = addr
				}
			}
		})
	}
	setPeer(1, 2, p12.Addr())
	setPeer(2, 1, p21.Addr())
	c.startAll(t, 1, 2, 3)
	admin1 := c.activate(t, 1)
	for _, id := range []uint32{2, 3} {
		c.loginWhenKnown(t, id, "crypto-user", testCU, testCUPW)
	}
	if p12.Accepted() == 0 || p21.Accepted() == 0 {
		t.Fatalf("the nodes bypass the proxies: %d and %d connections through them", p12.Accepted(), p21.Accepted())
	}
	ctx := t.Context()

	t.Run("no failed operation while a node is killed", func(t *testing.T) {
		cfg := c.clientConfig(1, 1, 2, 3)
		var clientLog logBuffer
		cfg.Logger = slog.New(slog.NewTextHandler(&clientLog, nil))
		cl := c.dialConfig(t, cfg)
		s := loginT(t, cl, "crypto-user", testCU, testCUPW)
		pub, priv := genECPair(t, s, "ops-ec", client.MinNodes(3))
		aes, err := s.GenerateKey(ctx, mechAESKeyGen, aesTokenTemplate("ops-aes"), client.MinNodes(3))
		if err != nil {
			t.Fatal(err)
		}
		var (
			ops    atomic.Int64
			mu     sync.Mutex
			failed []error
			wg     sync.WaitGroup
		)
		stop := make(chan struct{})
		fail := func(err error) {
			mu.Lock()
			failed = append(failed, err)
			mu.Unlock()
		}
		for w := range 4 {
			wg.Go(func() {
				for i := uint32(0); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					msg := fmt.Appendf(nil, "worker %d op %d", w, i)
					if i%2 == 0 {
						sig, err := s.Sign(ctx, priv, mechECDSASHA256, msg)
						if err == nil {
							err = s.Verify(ctx, pub, mechECDSASHA256, msg, sig)
						}
						if err != nil {
							fail(fmt.Errorf("sign/verify: %w", err))
						}
					} else {
						iv := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, uint64(w)|1<<63), i) // never zero: a zeroed IV is the HSM's to choose
						ct, err := s.Encrypt(ctx, aes, gcmMech(iv), msg)
						var pt []byte
						if err == nil {
							pt, err = s.Decrypt(ctx, aes, gcmMech(iv), ct)
						}
						if err == nil && !bytes.Equal(pt, msg) {
							err = fmt.Errorf("decrypted %q, want %q", pt, msg)
						}
						if err != nil {
							fail(fmt.Errorf("encrypt/decrypt: %w", err))
						}
					}
					ops.Add(1)
				}
			})
		}
		start := time.Now()
		defer func() {
			select {
			case <-stop:
			default:
				close(stop)
			}
			wg.Wait()
		}()
		pollUntil(t, "200 operations before the kill", func() error { return atLeast(&ops, 200) })
		before, killedAt := ops.Load(), time.Now()
		c.kill(t, 3)
		pollUntil(t, "1500 operations after the kill", func() error { return atLeast(&ops, before+1500) })
		close(stop)
		wg.Wait()
		total := ops.Load()
		t.Logf("%d operations (%d before HSM 3 was killed, %s into the run) in %s, %.0f ops/s; %d failed",
			total, before, killedAt.Sub(start).Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
			float64(total)/time.Since(start).Seconds(), len(failed))
		for _, err := range failed[:min(len(failed), 10)] {
			t.Errorf("failed: %v", err)
		}
		// The kill hit the client (it had requests or sessions there), and
		// the operations went on without it.
		if down := fmt.Sprintf(`msg="HSM down" hsm=%s`, c.addr(3)); !strings.Contains(clientLog.String(), down) {
			t.Errorf("the client never saw HSM 3 go down; its log:\n%s", clientLog.String())
		}
	})

	alice1 := loginT(t, c.dial(t, 1, 1), "crypto-user", testCU, testCUPW)
	alice2 := c.loginWhenKnown(t, 2, "crypto-user", testCU, testCUPW)
	info1 := c.dial(t, 1, 1)
	createKeys := func(t *testing.T, prefix string, n int) []client.ObjectID {
		t.Helper()
		var ids []client.ObjectID
		for i := range n {
			id, err := alice1.GenerateKey(ctx, mechAESKeyGen, aesTokenTemplate(fmt.Sprintf("%s-%d", prefix, i)))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	lacksAll := func(t *testing.T, ids []client.ObjectID) {
		t.Helper()
		have, err := listTokenObjects(ctx, alice2)
		if err != nil {
			t.Fatal(err)
		}
		if m := missingIDs(ids, have); len(m) != len(ids) {
			t.Fatalf("HSM 2 has %d of the %d keys made on HSM 1 while the link was down", len(ids)-len(m), len(ids))
		}
	}

	for _, fault := range []struct {
		name string
		set  func(*faultProxy)
		// counter moves when node 1 tries to reach node 2 through the
		// faulty proxy: bytes held (cut), connections refused (drop).
		counter func(*faultProxy) int64
	}{
		{"cut", (*faultProxy).Cut, (*faultProxy).Held},
		{"drop", (*faultProxy).Drop, (*faultProxy).Refused},
	} {
		t.Run(fault.name+" link heals", func(t *testing.T) {
			fault.set(p12)
			fault.set(p21)
			defer p12.Pass()
			defer p21.Pass()
			mark := fault.counter(p12)
			ids := createKeys(t, fault.name, 10)
			pollUntil(t, "HSM 1 trying to reach HSM 2 through the faulty link", func() error {
				if fault.counter(p12) == mark {
					return errors.New("no attempt seen by the proxy yet")
				}
				return nil
			})
			lacksAll(t, ids)
			if lag := peerLag(ctx, t, info1, 2); lag <= 0 {
				t.Errorf("HSM 1 reports a sync lag of %s for HSM 2 while the link is %s", lag, fault.name)
			}
			p12.Pass()
			p21.Pass()
			took := c.holdsAll(t, 2, alice2, ids)
			t.Logf("link %s: HSM 2 caught up with the %d keys %s after the link healed", fault.name, len(ids), took.Round(time.Millisecond))
		})
	}

	t.Run("password change during a cut holds", func(t *testing.T) {
		const carol, pw1, pw2 = "carol", "carol-password-1", "carol-password-2"
		if err := admin1.CreateUser(ctx, carol, "crypto-user", pw1, nil); err != nil {
			t.Fatal(err)
		}
		cl2 := c.dial(t, 1, 2)
		pollUntil(t, "carol on HSM 2", func() error { return loginOnce(ctx, cl2, "crypto-user", carol, pw1) })

		p12.Cut()
		p21.Cut()
		defer p12.Pass()
		defer p21.Pass()
		// The admin changes carol's password on HSM 1; carol, told the new
		// one, tries it on HSM 2, which does not know it yet.
		if err := admin1.ChangePassword(ctx, carol, pw2, nil); err != nil {
			t.Fatal(err)
		}
		if err := loginOnce(ctx, cl2, "crypto-user", carol, pw2); !refusedWith(err, ck.CKR_PIN_INCORRECT) {
			t.Fatalf("the new password on HSM 2 during the cut: %v, want CKR_PIN_INCORRECT", err)
		}
		p12.Pass()
		p21.Pass()
		// Both sides have delivered what they changed once each reports no
		// lag towards the other.
		pollUntil(t, "HSMs 1 and 2 in sync", func() error {
			if l := peerLag(ctx, t, info1, 2); l != 0 {
				return fmt.Errorf("HSM 1 lags %s behind towards HSM 2", l)
			}
			if l := peerLag(ctx, t, cl2, 1); l != 0 {
				return fmt.Errorf("HSM 2 lags %s behind towards HSM 1", l)
			}
			return nil
		})
		cl1 := c.dial(t, 1, 1)
		for _, id := range []uint32{1, 2} {
			cl := map[uint32]*client.Cluster{1: cl1, 2: cl2}[id]
			if err := loginOnce(ctx, cl, "crypto-user", carol, pw2); err != nil {
				old := loginOnce(ctx, cl, "crypto-user", carol, pw1)
				t.Errorf("HSM %d: the password set during the cut is refused (%v); the old one: %v. "+
					"The failed login on HSM 2 wrote a newer version of carol with the old password, and it won everywhere.", id, err, old)
			}
		}
	})
}

// atLeast reports whether n has reached want.
func atLeast(n *atomic.Int64, want int64) error {
	if got := n.Load(); got < want {
		return fmt.Errorf("%d of %d", got, want)
	}
	return nil
}

// peerLag is the sync lag the (single) HSM of cl reports towards peer.
func peerLag(ctx context.Context, t testing.TB, cl *client.Cluster, peer uint32) time.Duration {
	t.Helper()
	st := cl.ClusterInfo(ctx)
	if len(st) != 1 || st[0].Info == nil {
		t.Fatalf("node info: %+v", st)
	}
	for _, p := range st[0].Info.Peers {
		if p.NodeID == peer {
			return p.SyncLag
		}
	}
	t.Fatalf("HSM %d does not list peer %d: %+v", st[0].Info.NodeID, peer, st[0].Info.Peers)
	return 0
}
