package node

import (
	"crypto/tls"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestCatchUpBeforeAnswer: node 1 cannot reach node 2 (a one-way cut: its
// address for node 2 refuses connections), so nothing it makes is pushed,
// and anti-entropy is an hour away. Node 2 still answers as if in sync:
// a login of a user made on node 1, a search for a key made there, and the
// use of such a key by its handle all catch up with node 1 first.
func TestCatchUpBeforeAnswer(t *testing.T) {
	pki := newTestPKI(t, "cluster-catch-up")
	cfgA := config(t, pki, 1, MasterKeyCreate)
	cfgB := config(t, pki, 2, MasterKeyClone)
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	cfgA.Peers = []PeerAddr{{ID: 2, Addr: deadAddr}}
	cfgB.Peers = []PeerAddr{{ID: 1, Addr: cfgA.Listener.Addr().String()}}
	cfgA.SyncInterval, cfgB.SyncInterval = time.Hour, time.Hour
	a := start(t, cfgA)
	b := start(t, cfgB)
	eventually(t, "node 1 ready", a.Ready)
	eventually(t, "node 2 ready", b.Ready)
	ctx := t.Context()
	ca := hsmv1.NewHSMClient(dial(t, pki, a.Addr()))
	cb := hsmv1.NewHSMClient(dial(t, pki, b.Addr()))

	activate(t, ca) // the admin's activation and alice, on node 1 only
	sa := cuSession(t, ca)
	var sb uint64
	t.Run("a user made on node 1 logs in on node 2", func(t *testing.T) {
		sb = open(t, cb)
		if _, err := cb.Login(ctx, &hsmv1.LoginRequest{Session: sb, Role: "crypto-user", Username: cuName, Password: cuPW}); err != nil {
			t.Fatalf("login on node 2: %v", err)
		}
	})
	if sb == 0 {
		t.FailNow()
	}
	label := &hsmv1.Attribute{Type: uint64(ck.CKA_LABEL), Value: []byte("made-on-1")}
	t.Run("a key made on node 1 is found on node 2", func(t *testing.T) {
		key, err := ca.GenerateKey(ctx, &hsmv1.GenerateKeyRequest{
			Session: sa, Mechanism: mechOf(ck.CKM_AES_KEY_GEN), MinNodes: 1,
			Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 32), boolAttr(ck.CKA_TOKEN, true), label},
		})
		if err != nil {
			t.Fatal(err)
		}
		found, err := cb.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: sb, Template: []*hsmv1.Attribute{label}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(found.GetObjects(), []uint64{key.GetObject()}) {
			t.Errorf("node 2 finds %v, want [%d]", found.GetObjects(), key.GetObject())
		}
	})
	t.Run("a key made on node 1 is usable on node 2 by its handle", func(t *testing.T) {
		key, err := aesKey(t, ca, sa, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		// The HSM chooses the IV (all-zero IV), as FIPS 140-only mode needs.
		gcm := &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_GCM), Iv: make([]byte, 12), TagBits: 128}
		ct, err := cb.Encrypt(ctx, &hsmv1.CryptRequest{Session: sb, Key: key.GetObject(), Mechanism: gcm, Data: []byte("m")})
		if err != nil {
			t.Fatalf("encrypt on node 2: %v", err)
		}
		gcm.Iv = ct.GetIv()
		if _, err := ca.Decrypt(ctx, &hsmv1.CryptRequest{Session: sa, Key: key.GetObject(), Mechanism: gcm, Data: ct.GetData()}); err != nil {
			t.Errorf("decrypt on node 1: %v", err)
		}
	})
	t.Run("both know how far behind node 2 is", func(t *testing.T) {
		if q := a.syncState().queued[2]; q == 0 {
			t.Errorf("node 1 has nothing queued for node 2, which it cannot reach")
		}
		behind := b.syncState().behind[1]
		if !behind.Known || behind.Records == 0 {
			t.Errorf("node 2's view of node 1: %+v, want the backlog node 1 reported", behind)
		}
		info, err := cb.NodeInfo(ctx, &hsmv1.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if p := info.GetPeers(); len(p) != 1 || p[0].GetBehindRecords() == 0 {
			t.Errorf("NodeInfo peers = %v, want records behind node 1", p)
		}
	})
}

// TestCatchUpRefusals: only a node of the cluster, naming itself, that is a
// peer of this node may ask it to flush its queue.
func TestCatchUpRefusals(t *testing.T) {
	pki := newTestPKI(t, "cluster-catch-up-auth")
	n := start(t, config(t, pki, 1, MasterKeyCreate)) // no peers
	eventually(t, "ready", n.Ready)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		cert []tls.Certificate
		from uint32
		code codes.Code
	}{
		{"no certificate", nil, 2, codes.PermissionDenied},
		{"claims another node", []tls.Certificate{pki.nodeCert(t, 2)}, 3, codes.PermissionDenied},
		{"not a peer of this node", []tls.Certificate{pki.nodeCert(t, 2)}, 2, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hsmv1.NewPeerClient(dial(t, pki, n.Addr(), tc.cert...)).CatchUp(ctx, &hsmv1.CatchUpRequest{From: tc.from})
			if status.Code(err) != tc.code {
				t.Errorf("CatchUp: %v, want %v", err, tc.code)
			}
		})
	}
}

// TestCatchUpMethods: the methods that catch up first are HSM methods.
func TestCatchUpMethods(t *testing.T) {
	have := map[string]bool{}
	for _, m := range hsmv1.HSM_ServiceDesc.Methods {
		have[m.MethodName] = true
	}
	for m := range catchUpBefore {
		if !have[m] {
			t.Errorf("catchUpBefore names %q, not a method of the HSM service", m)
		}
	}
}

// TestStrangersCatchUpBounded: a catch-up costs this node a round trip to
// every peer (and, when a peer's queue cannot tell, an anti-entropy run),
// so a client that has not passed a password check must not cause one per
// request. A stranger's call (no session, or one not logged in) still
// catches up, but strangers start at most a couple of runs per
// strangerInterval however fast they call; a login causes none before its
// address's pacing admits it (a paced one causes none); a logged-in
// session catches up at once.
func TestStrangersCatchUpBounded(t *testing.T) {
	pki := newTestPKI(t, "cluster-catch-up-cost")
	cfgA := config(t, pki, 1, MasterKeyCreate)
	cfgB := config(t, pki, 2, MasterKeyClone)
	cfgA.Peers = []PeerAddr{{ID: 2, Addr: cfgB.Listener.Addr().String()}}
	cfgB.Peers = []PeerAddr{{ID: 1, Addr: cfgA.Listener.Addr().String()}}
	cfgA.SyncInterval, cfgB.SyncInterval = time.Hour, time.Hour
	cfgB.Limits.LoginFailureDelay = time.Hour // one wrong password pauses the address
	a := start(t, cfgA)
	b := start(t, cfgB)
	eventually(t, "node 1 ready", a.Ready)
	eventually(t, "node 2 ready", b.Ready)
	ctx := t.Context()
	activate(t, hsmv1.NewHSMClient(dial(t, pki, a.Addr())))
	cb := hsmv1.NewHSMClient(dial(t, pki, b.Addr()))
	served := func() int { // catch-ups node 1 served for node 2
		var m dto.Metric
		if err := a.metrics.requests.WithLabelValues("Peer", "CatchUp", codes.OK.String()).Write(&m); err != nil {
			t.Fatal(err)
		}
		return int(m.GetCounter().GetValue())
	}
	in := cuSession(t, cb) // before the failure below pauses this address
	anon := open(t, cb)
	paced := open(t, cb)
	if _, err := cb.Login(ctx, &hsmv1.LoginRequest{Session: paced, Role: "crypto-user", Username: cuName, Password: "wrong password"}); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	label := []*hsmv1.Attribute{{Type: uint64(ck.CKA_LABEL), Value: []byte("x")}}
	const calls = 8
	for _, tc := range []struct {
		name    string
		call    func() error
		noneAll bool // no catch-up at all
	}{
		{"search without a session", func() error {
			_, err := cb.FindObjects(ctx, &hsmv1.FindObjectsRequest{Template: label})
			return err
		}, false},
		{"search in an anonymous session", func() error {
			_, err := cb.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: anon, Template: label})
			return err
		}, false},
		{"user list without a session", func() error {
			_, err := cb.ListUsers(ctx, &hsmv1.SessionRequest{})
			return err
		}, false},
		{"trust anchors without a session", func() error {
			_, err := cb.ListTrustAnchors(ctx, &hsmv1.Empty{})
			return err
		}, false},
		{"unknown key in an anonymous session", func() error {
			_, err := cb.Encrypt(ctx, &hsmv1.CryptRequest{Session: anon, Key: 12345, Mechanism: mechOf(ck.CKM_AES_ECB), Data: make([]byte, 16)})
			return err
		}, true},
		{"login without a session", func() error {
			_, err := cb.Login(ctx, &hsmv1.LoginRequest{Role: "crypto-user", Username: cuName, Password: cuPW})
			return err
		}, true},
		{"login the address's pacing refuses", func() error {
			_, err := cb.Login(ctx, &hsmv1.LoginRequest{Session: paced, Role: "crypto-user", Username: cuName, Password: cuPW})
			return err
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, begin := served(), time.Now()
			for range calls {
				tc.call() // refused or answered: what counts is the catch-ups
			}
			got, slots := served()-before, int(time.Since(begin)/strangerInterval)+1
			switch {
			case tc.noneAll && got != 0:
				t.Errorf("%d calls made node 2 run %d catch-ups with node 1, want 0", calls, got)
			case got > 2*slots:
				t.Errorf("%d calls made node 2 run %d catch-ups with node 1 within %d stranger slots, want at most 2 a slot", calls, got, slots)
			}
		})
	}
	t.Run("a logged-in search catches up", func(t *testing.T) {
		before := served()
		must(t)(cb.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: in, Template: label}))
		if served() == before {
			t.Error("a logged-in search ran no catch-up")
		}
	})
}
