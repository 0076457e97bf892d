package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// pair starts node 1 (which creates the masking key) and node 2 (which
// clones it), each listing the other as its peer.
func pair(t *testing.T, pki *testPKI) (a, b *running, cfgA, cfgB Config) {
	t.Helper()
	cfgA = config(t, pki, 1, MasterKeyCreate)
	cfgB = config(t, pki, 2, MasterKeyClone)
	cfgA.Peers = []PeerAddr{{ID: 2, Addr: cfgB.Listener.Addr().String()}}
	cfgB.Peers = []PeerAddr{{ID: 1, Addr: cfgA.Listener.Addr().String()}}
	a = start(t, cfgA)
	b = start(t, cfgB)
	eventually(t, "node 1 ready", a.Ready)
	eventually(t, "node 2 ready", b.Ready)
	return a, b, cfgA, cfgB
}

// TestCluster: node 2 clones the masking key from node 1, users and keys
// made on one node are usable on the other, and client-side sync
// (min_nodes) holds with both nodes up and fails cleanly with one down.
func TestCluster(t *testing.T) {
	pki := newTestPKI(t, "cluster-two")
	a, b, _, _ := pair(t, pki)
	ctx := t.Context()

	checkA, err := a.store.MaskingKeyCheck()
	if err != nil {
		t.Fatal(err)
	}
	checkB, err := b.store.MaskingKeyCheck()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(checkA, checkB) {
		t.Fatalf("node 2 has masking key %x, node 1 %x", checkB, checkA)
	}

	ca := hsmv1.NewHSMClient(dial(t, pki, a.Addr()))
	cb := hsmv1.NewHSMClient(dial(t, pki, b.Addr()))
	activate(t, ca)
	var sb uint64
	eventually(t, "alice on node 2", func() bool {
		s := open(t, cb)
		_, err := cb.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: cuName, Password: cuPW})
		sb = s
		return err == nil
	})
	sa := cuSession(t, ca)

	t.Run("min_nodes 2", func(t *testing.T) {
		key, err := ecPair(t, ca, sa, true, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := key.GetStoredOn(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
			t.Errorf("stored_on = %v, want [1 2]", got)
		}
		// Usable on node 2 at once: no waiting for anti-entropy.
		sig, err := cb.Sign(ctx, &hsmv1.CryptRequest{Session: sb, Key: key.GetPrivateKey(), Mechanism: mechOf(ck.CKM_ECDSA_SHA256), Data: []byte("m")})
		if err != nil {
			t.Fatalf("sign on node 2: %v", err)
		}
		if _, err := ca.Verify(ctx, &hsmv1.VerifyRequest{Session: sa, Key: key.GetPublicKey(), Mechanism: mechOf(ck.CKM_ECDSA_SHA256), Data: []byte("m"), Signature: sig.GetData()}); err != nil {
			t.Errorf("verify on node 1: %v", err)
		}
	})
	t.Run("server-side sync", func(t *testing.T) {
		key, err := aesKey(t, ca, sa, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the key on node 2", func() bool {
			_, err := cb.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: sb, Object: key.GetObject()})
			return err == nil
		})
		must(t)(cb.DestroyObject(ctx, &hsmv1.ObjectRequest{Session: sb, Object: key.GetObject()}))
		eventually(t, "the deletion on node 1", func() bool {
			_, err := ca.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: sa, Object: key.GetObject()})
			return status.Code(err) == codes.NotFound
		})
	})
	t.Run("session objects stay local", func(t *testing.T) {
		key, err := aesKey(t, ca, sa, false, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := key.GetStoredOn(); len(got) != 1 || got[0] != 1 {
			t.Errorf("session key stored_on = %v, want [1]", got)
		}
	})
	t.Run("min_nodes 2 with node 2 down", func(t *testing.T) {
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		before, err := ca.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: sa})
		if err != nil {
			t.Fatal(err)
		}
		for _, create := range []func() error{
			func() error { _, err := aesKey(t, ca, sa, true, 2); return err },
			func() error { _, err := ecPair(t, ca, sa, true, 2); return err },
		} {
			err := create()
			wantErr(t, err, codes.FailedPrecondition, "CKR_FUNCTION_FAILED")
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "stored on 1 of 2 required HSMs; it was removed") {
				t.Errorf("message %q", msg)
			}
		}
		after, err := ca.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: sa})
		if err != nil {
			t.Fatal(err)
		}
		if len(after.GetObjects()) != len(before.GetObjects()) {
			t.Errorf("node 1 has %d objects after failed creations, %d before", len(after.GetObjects()), len(before.GetObjects()))
		}
		info, err := ca.NodeInfo(ctx, &hsmv1.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if p := info.GetPeers(); len(p) != 1 || p[0].GetNodeId() != 2 || p[0].GetConnected() {
			t.Errorf("peers = %v, want node 2 disconnected", p)
		}
	})
}

// TestOtherClusterRefused: a node whose data dir holds another cluster's
// masking key stops with an error that says so.
func TestOtherClusterRefused(t *testing.T) {
	pki := newTestPKI(t, "cluster-mk")
	a := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "node 1 ready", a.Ready)

	// Node 3's data dir got its masking key on its own: another cluster.
	cfg := config(t, pki, 3, MasterKeyCreate)
	lone := start(t, cfg)
	eventually(t, "lone node ready", lone.Ready)
	if err := lone.stop(); err != nil {
		t.Fatal(err)
	}

	cfg.Listener, cfg.MasterKey = listen(t), MasterKeyExisting
	cfg.Peers = []PeerAddr{{ID: 1, Addr: a.Addr()}}
	n, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(t.Context())
	if !errors.Is(err, ErrOtherCluster) || !strings.Contains(err.Error(), "holds the masking key of another cluster") ||
		!strings.Contains(err.Error(), "refusing to join") || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Fatalf("Run = %v, want a refusal to join naming the data dir", err)
	}
}

// TestCloneUnavailable: a joining node that cannot reach any peer serves
// nothing but says it is not ready; it stops cleanly.
func TestCloneUnavailable(t *testing.T) {
	pki := newTestPKI(t, "cluster-alone")
	cfg := config(t, pki, 2, MasterKeyClone)
	gone := listen(t)
	cfg.Peers = []PeerAddr{{ID: 1, Addr: gone.Addr().String()}}
	gone.Close()
	n := start(t, cfg)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	_, err := c.OpenSession(t.Context(), &hsmv1.OpenSessionRequest{})
	if status.Code(err) != codes.Unavailable || rvName(err) != "" {
		t.Errorf("OpenSession on a joining node: %v (reason %q), want Unavailable without ErrorInfo", err, rvName(err))
	}
	info, err := c.NodeInfo(t.Context(), &hsmv1.Empty{})
	if err != nil || info.GetReady() {
		t.Errorf("NodeInfo = %v, %v; want not ready", info, err)
	}
	if err := n.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}
