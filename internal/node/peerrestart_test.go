package node

import (
	"net"
	"testing"
	"time"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestMinNodesAfterPeerRestart: while node 2 is down, node 1's link to it
// fails its reconnects and backs off (here: after backoffAttempts failed
// attempts, more than a second); once node 2 is back and ready, a
// creation on node 1 with min_nodes 2 succeeds at once instead of failing
// fast ("key stored on 1 of 2 required HSMs") until the backoff ends: node
// 2 calls node 1 as it starts, and node 1 then reconnects its link to it.
func TestMinNodesAfterPeerRestart(t *testing.T) {
	const backoffAttempts = 7
	pki := newTestPKI(t, "cluster-restart")
	a, b, _, cfgB := pair(t, pki)
	ca := hsmv1.NewHSMClient(dial(t, pki, a.Addr()))
	activate(t, ca)
	sa := cuSession(t, ca)
	if _, err := aesKey(t, ca, sa, true, 2); err != nil {
		t.Fatalf("min_nodes 2 with both nodes up: %v", err)
	}
	addr := cfgB.Listener.Addr().String()
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}

	// Node 2's address, while it is down: every connection node 1 makes is
	// counted and closed at once, a failed connect attempt.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	attempts := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(attempts)
				return
			}
			c.Close()
			attempts <- struct{}{}
		}
	}()
	if _, err := aesKey(t, ca, sa, true, 2); err == nil {
		t.Fatal("min_nodes 2 with node 2 down succeeded")
	}
	deadline := time.After(30 * time.Second)
	for n := 0; n < backoffAttempts; n++ {
		select {
		case <-attempts:
		case <-deadline:
			t.Fatalf("node 1 made %d connect attempts to node 2 in 30s, want %d", n, backoffAttempts)
		}
	}
	ln.Close()
	for range attempts { // until the accept loop has stopped
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfgB.Listener = ln
	b2 := start(t, cfgB)
	eventually(t, "node 2 ready again", b2.Ready)
	// Node 2's calls as it starts reset node 1's backoff (heardFrom); the
	// reconnect itself may still be under way on a loaded machine. It must
	// come well before the backoff node 1 had reached (up to MaxDelay, 5 s)
	// would have ended.
	for up := time.Now().Add(2 * time.Second); !a.peers[0].connected() && time.Now().Before(up); {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := aesKey(t, ca, sa, true, 2); err != nil {
		t.Errorf("min_nodes 2 on node 1 once node 2 is ready again: %v (node 1's link to node 2: %v)", err, a.peers[0].conn.GetState())
	}
}
