package node

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"testing"

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
	ctx := t.Context()
	clone := func(addr string, id uint32) (*hsmv1.CloneResponse, error) {
		eph, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c := hsmv1.NewPeerClient(dial(t, pki, addr, []tls.Certificate{pki.nodeCert(t, id)}...))
		return c.Clone(ctx, &hsmv1.CloneRequest{NodeId: id, EphemeralPublic: eph.PublicKey().Bytes()})
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
			waitJoined(t, tc.server, tc.id)
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

// waitJoined waits until n has the record that node id joined.
func waitJoined(t *testing.T, n *running, id uint32) {
	t.Helper()
	eventually(t, "the joined record", func() bool {
		ok, err := n.hasJoined(t.Context(), id)
		return err == nil && ok
	})
}

// TestRejoinRefused: a node started on an empty data dir with the id of a
// node that already joined stops with ErrAlreadyJoined instead of getting
// the masking key again.
func TestRejoinRefused(t *testing.T) {
	pki := newTestPKI(t, "cluster-rejoin")
	a, _, _, _ := pair(t, pki)
	waitJoined(t, a, 2)
	cfg := config(t, pki, 2, MasterKeyClone)
	cfg.Peers = []PeerAddr{{ID: 1, Addr: a.Addr()}}
	n, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(t.Context()); !errors.Is(err, ErrAlreadyJoined) {
		t.Fatalf("Run = %v, want ErrAlreadyJoined", err)
	}
	if n.store.HasMaskingKey() {
		t.Fatal("the rejoining node holds the masking key")
	}
}
