package node

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// adminSession opens a session on c logged in as the admin.
func adminSession(t testing.TB, c hsmv1.HSMClient) uint64 {
	t.Helper()
	s := open(t, c)
	must(t)(c.Login(t.Context(), &hsmv1.LoginRequest{Session: s, Role: "admin", Username: "admin", Password: adminPW}))
	return s
}

// anchorsOf lists the trust anchors of the node c talks to, by reference.
func anchorsOf(t testing.TB, c hsmv1.HSMClient) ([]uint32, error) {
	t.Helper()
	r, err := c.ListTrustAnchors(t.Context(), &hsmv1.Empty{})
	if err != nil {
		return nil, err
	}
	var refs []uint32
	for _, a := range r.GetAnchors() {
		refs = append(refs, a.GetReference())
	}
	return refs, nil
}

// TestClientMTLS runs client mTLS on a two-node cluster: a trust anchor
// registered on one node reaches the other; enforcement needs the caller's
// own client certificate; once enforced, connections without an accepted
// certificate are refused on both nodes, clients with one work, and the
// nodes keep synchronizing; a client certificate never passes for a node's.
func TestClientMTLS(t *testing.T) {
	pki := newTestPKI(t, "cluster-mtls")
	a, b, _, _ := pair(t, pki)
	ctx := t.Context()
	clients := newTestPKI(t, "client-ca") // the customer's CA for client certificates
	appCert := clients.cert(t, "app", nil)
	stranger := newTestPKI(t, "stranger").cert(t, "stranger", nil)

	plainA := hsmv1.NewHSMClient(dial(t, pki, a.Addr()))
	plainB := hsmv1.NewHSMClient(dial(t, pki, b.Addr()))
	activate(t, plainA)
	eventually(t, "activation on node 2", func() bool {
		s := open(t, plainB)
		_, err := plainB.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "admin", Username: "admin", Password: adminPW})
		return err == nil
	})

	// Before its CA is registered a client certificate ends the handshake.
	if _, err := hsmv1.NewHSMClient(dial(t, pki, a.Addr(), appCert)).ListTrustAnchors(ctx, &hsmv1.Empty{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("client certificate of an unregistered CA: %v, want Unavailable (handshake refused)", err)
	}

	admin := adminSession(t, plainA)
	_, err := plainA.SetMTLSEnforcement(ctx, &hsmv1.SetMTLSEnforcementRequest{Session: admin, Level: "cluster"})
	wantErr(t, err, codes.FailedPrecondition, "CKR_FUNCTION_FAILED")
	reg, err := plainA.RegisterTrustAnchor(ctx, &hsmv1.RegisterTrustAnchorRequest{Session: admin, Certificate: clients.ca.Raw})
	if err != nil {
		t.Fatal(err)
	}
	if reg.GetReference() != 1 {
		t.Fatalf("reference %d, want 1", reg.GetReference())
	}
	_, err = plainA.RegisterTrustAnchor(ctx, &hsmv1.RegisterTrustAnchorRequest{Session: admin, Certificate: clients.ca.Raw})
	wantErr(t, err, codes.FailedPrecondition, "CKR_FUNCTION_FAILED")
	eventually(t, "the anchor on node 2", func() bool {
		refs, err := anchorsOf(t, plainB)
		return err == nil && len(refs) == 1 && refs[0] == 1
	})

	// The caller's own connection must present an accepted certificate.
	_, err = plainA.SetMTLSEnforcement(ctx, &hsmv1.SetMTLSEnforcementRequest{Session: admin, Level: "cluster"})
	wantErr(t, err, codes.FailedPrecondition, "CKR_FUNCTION_FAILED")
	if !strings.Contains(status.Convert(err).Message(), "no client certificate") {
		t.Errorf("refusal does not say why: %v", err)
	}
	if _, err := hsmv1.NewHSMClient(dial(t, pki, a.Addr(), stranger)).ListTrustAnchors(ctx, &hsmv1.Empty{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("certificate of another CA: %v, want Unavailable (handshake refused)", err)
	}
	certA := hsmv1.NewHSMClient(dial(t, pki, a.Addr(), appCert))
	certB := hsmv1.NewHSMClient(dial(t, pki, b.Addr(), appCert))
	adminCert := adminSession(t, certA)
	must(t)(certA.SetMTLSEnforcement(ctx, &hsmv1.SetMTLSEnforcementRequest{Session: adminCert, Level: "cluster"}))

	// Enforced, on both nodes: without a certificate nothing works, even on
	// a connection made before; with one everything does.
	for name, c := range map[string]hsmv1.HSMClient{"node 1": plainA, "node 2": plainB} {
		eventually(t, "enforcement on "+name, func() bool {
			_, err := c.OpenSession(ctx, &hsmv1.OpenSessionRequest{})
			return status.Code(err) == codes.PermissionDenied
		})
		_, err := c.ListUsers(ctx, &hsmv1.SessionRequest{})
		wantErr(t, err, codes.PermissionDenied, "CKR_DEVICE_ERROR")
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "--client-cert-hsm-tls-file") {
			t.Errorf("%s: refusal does not say what to do: %s", name, msg)
		}
	}
	// A batched call is held to the same rule.
	st, err := plainA.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, errs := sendBatch(t, st, batchCall(t, 1, "Digest", &hsmv1.CryptRequest{Mechanism: mechOf(ck.CKM_SHA256), Data: []byte("x")}))
	wantErr(t, errs[1], codes.PermissionDenied, "CKR_DEVICE_ERROR")
	level, err := certB.GetMTLSEnforcement(ctx, &hsmv1.SessionRequest{Session: cuSession(t, certB)})
	if err != nil || level.GetLevel() != "cluster" {
		t.Fatalf("GetMTLSEnforcement on node 2 = %v, %v", level, err)
	}
	s := cuSession(t, certA)
	key, err := aesKey(t, certA, s, true, 2) // stored on both nodes: peer sync works under enforcement
	if err != nil {
		t.Fatal(err)
	}
	if got := key.GetStoredOn(); len(got) != 2 {
		t.Errorf("stored_on %v, want both nodes", got)
	}

	// A certificate of the client CA naming a node is still no node's.
	u := &url.URL{Scheme: "coffer", Host: "cluster", Path: fmt.Sprintf("/%s/hsm/%d", pki.cluster, 2)}
	forged := clients.cert(t, "node 2?", u)
	if _, err := hsmv1.NewPeerClient(dial(t, pki, a.Addr(), forged)).Hello(ctx, &hsmv1.HelloRequest{NodeId: 2, ClusterId: pki.cluster}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Hello with a client certificate naming node 2: %v, want PermissionDenied", err)
	}

	// The last anchor stays while enforced; with level none it may go.
	_, err = certB.DeregisterTrustAnchor(ctx, &hsmv1.DeregisterTrustAnchorRequest{Session: adminSession(t, certB), All: true})
	wantErr(t, err, codes.FailedPrecondition, "CKR_FUNCTION_FAILED")
	must(t)(certA.SetMTLSEnforcement(ctx, &hsmv1.SetMTLSEnforcementRequest{Session: adminCert, Level: "none"}))
	eventually(t, "no enforcement on node 2", func() bool {
		_, err := plainB.OpenSession(ctx, &hsmv1.OpenSessionRequest{})
		return err == nil
	})
	removed, err := plainB.DeregisterTrustAnchor(ctx, &hsmv1.DeregisterTrustAnchorRequest{Session: adminSession(t, plainB), Reference: 1})
	if err != nil || len(removed.GetAnchors()) != 1 {
		t.Fatalf("deregister: %v, %v", removed, err)
	}
	eventually(t, "no anchor on node 1", func() bool {
		refs, err := anchorsOf(t, plainA)
		return err == nil && len(refs) == 0
	})
}

// TestListUsersWithoutLogin: anyone lists the users, with no session or a
// session that is not logged in.
func TestListUsersWithoutLogin(t *testing.T) {
	pki := newTestPKI(t, "cluster-list")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	activate(t, c)
	ctx := t.Context()
	for name, sid := range map[string]uint64{"no session": 0, "not logged in": open(t, c)} {
		users, err := c.ListUsers(ctx, &hsmv1.SessionRequest{Session: sid})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(users.GetUsers()) != 2 {
			t.Errorf("%s: %v, want admin and alice", name, users.GetUsers())
		}
	}
	_, err := c.ListUsers(ctx, &hsmv1.SessionRequest{Session: 12345})
	wantErr(t, err, codes.NotFound, "CKR_SESSION_HANDLE_INVALID")
}

func TestHSMMethodPrefix(t *testing.T) {
	if want := "/" + hsmv1.HSM_ServiceDesc.ServiceName + "/"; hsmMethodPrefix != want {
		t.Fatalf("hsmMethodPrefix %q, want %q", hsmMethodPrefix, want)
	}
}

// TestVerifiedClientsCache: a verified chain is remembered for its policy
// snapshot only.
func TestVerifiedClientsCache(t *testing.T) {
	clients := newTestPKI(t, "client-ca")
	c := clients.cert(t, "app", nil)
	chain := mustParse(t, c)
	var v verifiedClients
	p1, p2 := &hsm.ClientTLSPolicy{}, &hsm.ClientTLSPolicy{} // two snapshots
	now := chain[0].NotBefore.Add(1)
	if v.has(p1, chain, now) {
		t.Fatal("empty cache has a chain")
	}
	v.add(p1, chain)
	if !v.has(p1, chain, now) {
		t.Fatal("added chain missing")
	}
	if v.has(p2, chain, now) {
		t.Fatal("chain verified under another policy counts")
	}
	if v.has(p1, chain, chain[0].NotAfter.Add(1)) {
		t.Fatal("expired chain counts")
	}
	if v.has(p1, nil, now) {
		t.Fatal("no chain counts")
	}
}

func mustParse(t testing.TB, c tls.Certificate) []*x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{leaf}
}
