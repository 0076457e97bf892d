package node

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestCloneOncePerNode: a certificate minted under the cluster key for a
// node id that already holds the masking key gets no masking key from any
// HSM, whether that node cloned it (node 2) or created it (node 1); a node
// id that has not joined gets it once, and a second Clone for it is refused.
func TestCloneOncePerNode(t *testing.T) {
	pki := newTestPKI(t, "cluster-clone-once")
	a, b, _, _ := pair(t, pki)
	clone := func(addr string, id uint32) (*hsmv1.CloneResponse, error) {
		return cloneCall(t, pki, addr, id, secretOf(t))
	}
	for _, tc := range []struct {
		name   string
		server *running
		id     uint32
	}{
		{"node 2 (cloned) asks node 1", a, 2},
		{"node 1 (created) asks node 2", b, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waitFinal(t, tc.server, tc.id)
			resp, err := clone(tc.server.Addr(), tc.id)
			if status.Code(err) != codes.AlreadyExists || len(resp.GetWrappedMk()) != 0 {
				t.Fatalf("Clone = %v, %v; want AlreadyExists and no masking key", resp, err)
			}
		})
	}
	t.Run("a new node id, once", func(t *testing.T) {
		resp, err := clone(a.Addr(), 3)
		if err != nil || len(resp.GetWrappedMk()) == 0 {
			t.Fatalf("first Clone for node 3 = %v, %v; want the wrapped key", resp, err)
		}
		for _, n := range []*running{a, b} {
			waitJoined(t, n, 3)
			if resp, err := clone(n.Addr(), 3); status.Code(err) != codes.AlreadyExists || len(resp.GetWrappedMk()) != 0 {
				t.Fatalf("second Clone for node 3 on node %d = %v, %v; want AlreadyExists", n.cfg.NodeID, resp, err)
			}
		}
	})
}

// cloneCall asks the node at addr for the masking key with a node
// certificate for id (as anyone holding the cluster key can mint).
func cloneCall(t *testing.T, pki *testPKI, addr string, id uint32, secret []byte) (*hsmv1.CloneResponse, error) {
	t.Helper()
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := hsmv1.NewPeerClient(dial(t, pki, addr, []tls.Certificate{pki.nodeCert(t, id)}...))
	return c.Clone(t.Context(), &hsmv1.CloneRequest{NodeId: id, EphemeralPublic: eph.PublicKey().Bytes(), JoinSecret: secret})
}

func secretOf(t *testing.T) []byte {
	b := make([]byte, joinSecretLen)
	rand.Read(b)
	return b
}

// waitJoined waits until n has the record that node id joined.
func waitJoined(t *testing.T, n *running, id uint32) {
	t.Helper()
	eventually(t, "the joined record", func() bool {
		st, err := n.joinedState(t.Context(), id)
		return err == nil && st.joined
	})
}

// waitFinal waits until n has node id's final joined record.
func waitFinal(t *testing.T, n *running, id uint32) {
	t.Helper()
	eventually(t, "the final joined record", func() bool {
		st, err := n.joinedState(t.Context(), id)
		return err == nil && st.joined && st.commit == nil
	})
}

// TestRejoinRefused: a node started on an empty data dir with the id of a
// node that already joined stops with ErrAlreadyJoined instead of getting
// the masking key again.
func TestRejoinRefused(t *testing.T) {
	pki := newTestPKI(t, "cluster-rejoin")
	a, _, _, _ := pair(t, pki)
	waitFinal(t, a, 2)
	cfg := config(t, pki, 2, MasterKeyClone)
	cfg.Peers = []PeerAddr{{ID: 1, Addr: a.Addr()}}
	n, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Bounded: a node that did get the key would serve until ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := n.Run(ctx); !errors.Is(err, ErrAlreadyJoined) {
		t.Fatalf("Run = %v, want ErrAlreadyJoined", err)
	}
	if n.store.HasMaskingKey() {
		t.Fatal("the rejoining node holds the masking key")
	}
}

// TestCloneRetrySameJoin: a join whose answer was lost asks again with its
// join secret and gets the key again; any other secret, or none, gets
// nothing; once the node has joined, its own secret gets nothing either.
func TestCloneRetrySameJoin(t *testing.T) {
	pki := newTestPKI(t, "cluster-clone-retry")
	a, _, _, _ := pair(t, pki)
	secret := secretOf(t)
	first, err := cloneCall(t, pki, a.Addr(), 3, secret)
	if err != nil {
		t.Fatalf("first Clone for node 3: %v", err)
	}
	again, err := cloneCall(t, pki, a.Addr(), 3, secret)
	if err != nil || len(again.GetWrappedMk()) == 0 || string(again.GetMkCheck()) != string(first.GetMkCheck()) {
		t.Fatalf("retry with the same join secret = %v, %v; want the key again", again, err)
	}
	for _, tc := range []struct {
		name   string
		secret []byte
		code   codes.Code
	}{
		{"another secret", secretOf(t), codes.AlreadyExists},
		{"no secret", nil, codes.AlreadyExists},
		{"a short secret", secret[:16], codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, err := cloneCall(t, pki, a.Addr(), 3, tc.secret); status.Code(err) != tc.code || len(resp.GetWrappedMk()) != 0 {
				t.Fatalf("Clone = %v, %v; want %v", resp, err, tc.code)
			}
		})
	}
	// Node 3 holds the key now and says so: its record is final.
	if err := a.markJoined(t.Context(), 3, nil); err != nil {
		t.Fatal(err)
	}
	if resp, err := cloneCall(t, pki, a.Addr(), 3, secret); status.Code(err) != codes.AlreadyExists || len(resp.GetWrappedMk()) != 0 {
		t.Fatalf("Clone with the secret after the join = %v, %v; want AlreadyExists", resp, err)
	}
}

// TestJoinAfterLostAnswer: a joining node whose first Clone was served but
// whose answer never arrived joins on its next try, with the join secret it
// kept in its store; its record is final once it has caught up.
func TestJoinAfterLostAnswer(t *testing.T) {
	pki := newTestPKI(t, "cluster-lost-answer")
	a, _, _, _ := pair(t, pki)
	cfg := config(t, pki, 3, MasterKeyClone)
	cfg.Peers = []PeerAddr{{ID: 1, Addr: a.Addr()}}
	n, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := n.joinSecret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloneCall(t, pki, a.Addr(), 3, secret); err != nil { // the answer that was lost
		t.Fatal(err)
	}
	r := run(t, n)
	eventually(t, "node 3 ready", r.Ready)
	waitFinal(t, a, 3)
	if resp, err := cloneCall(t, pki, a.Addr(), 3, secret); status.Code(err) != codes.AlreadyExists || len(resp.GetWrappedMk()) != 0 {
		t.Fatalf("Clone after the join = %v, %v; want AlreadyExists", resp, err)
	}
}

func TestJoinedNodeID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want uint32
		ok   bool
	}{
		{joinedID("cluster-a", 7), 7, true},
		{joinedID("cluster-a/b", 12), 12, true},
		{"node-joined/cluster-a/0", 0, false},
		{"node-joined/cluster-a/x", 0, false},
		{"node-joined/4294967296", 0, false},
		{"mtls/anchor/1", 0, false},
	} {
		if got, ok := JoinedNodeID(tc.id); got != tc.want || ok != tc.ok {
			t.Errorf("JoinedNodeID(%q) = %d, %v; want %d, %v", tc.id, got, ok, tc.want, tc.ok)
		}
	}
}
