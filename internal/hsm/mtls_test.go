package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"
)

// testCert is a certificate made for the mTLS tests, with its key.
type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// certOpts says what makeCert makes; the zero value is a CA valid now.
type certOpts struct {
	leaf      bool               // not a CA
	notAfter  time.Time          // zero: a day from now
	eku       []x509.ExtKeyUsage // leaves only
	keyUsage  x509.KeyUsage      // zero: cert-sign for a CA, digital signature for a leaf
	noBasicCA bool               // a "CA" without basicConstraints
}

// Keys that are slow to make, made once.
var (
	rsa1024 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) })
	rsa2048 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	edKey   = sync.OnceValue(func() ed25519.PrivateKey { _, k, _ := ed25519.GenerateKey(rand.Reader); return k })
)

// serialNumber is a fresh random serial number.
func serialNumber(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	noErr(t, err)
	return n
}

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// ecKey returns a fresh key on curve (each CA its own key, so two CAs differ).
func ecKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	noErr(t, err)
	return k
}

// makeCert issues a certificate for key, signed by parent (nil: self-signed).
func makeCert(t testing.TB, cn string, key crypto.Signer, parent *testCert, o certOpts) *testCert {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: !o.noBasicCA, IsCA: !o.leaf && !o.noBasicCA,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if !o.notAfter.IsZero() {
		tmpl.NotAfter = o.notAfter
	}
	if o.leaf {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, o.eku
	}
	if o.keyUsage != 0 {
		tmpl.KeyUsage = o.keyUsage
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	noErr(t, err)
	c, err := x509.ParseCertificate(der)
	noErr(t, err)
	return &testCert{cert: c, key: key}
}

func TestMTLSLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MTLSLevel
	}{{"none", MTLSNone}, {"cluster", MTLSCluster}, {"", 0}, {"Cluster", 0}, {"full", 0}} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMTLSLevel(tc.in)
			if tc.want == 0 {
				wantRefusal(t, err, ErrArgumentsBad)
				return
			}
			noErr(t, err)
			if got != tc.want || got.String() != tc.in {
				t.Fatalf("ParseMTLSLevel(%q) = %v", tc.in, got)
			}
		})
	}
	if FormatAnchorRef(1) != "0x01" || FormatAnchorRef(300) != "0x12c" {
		t.Fatalf("FormatAnchorRef: %s %s", FormatAnchorRef(1), FormatAnchorRef(300))
	}
}

func TestRegisterTrustAnchor(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	cu := withCU(t, td, admin, "alice")
	good := makeCert(t, "client CA", ecKey(t, elliptic.P256()), nil, certOpts{})

	t.Run("refusals", func(t *testing.T) {
		expired := time.Now().Add(-time.Minute)
		for _, tc := range []struct {
			name string
			sid  SessionID
			der  []byte
			want *Kind
		}{
			{"crypto user", cu, good.cert.Raw, ErrRoleNotPermitted},
			{"not logged in", td.OpenSession(), good.cert.Raw, ErrNotLoggedIn},
			{"empty", admin, nil, ErrTrustAnchorInvalid},
			{"not DER", admin, []byte("-----BEGIN CERTIFICATE-----"), ErrTrustAnchorInvalid},
			{"too long", admin, make([]byte, maxAnchorLen+1), ErrTrustAnchorInvalid},
			{"RSA-1024", admin, makeCert(t, "weak CA", rsa1024(), nil, certOpts{}).cert.Raw, ErrTrustAnchorInvalid},
			{"P-224", admin, makeCert(t, "p224 CA", ecKey(t, elliptic.P224()), nil, certOpts{}).cert.Raw, ErrTrustAnchorInvalid},
			{"Ed25519", admin, makeCert(t, "ed CA", edKey(), nil, certOpts{}).cert.Raw, ErrTrustAnchorInvalid},
			{"not a CA", admin, makeCert(t, "leaf", ecKey(t, elliptic.P256()), good, certOpts{leaf: true}).cert.Raw, ErrTrustAnchorInvalid},
			{"no basic constraints", admin, makeCert(t, "v1ish", ecKey(t, elliptic.P256()), nil, certOpts{noBasicCA: true}).cert.Raw, ErrTrustAnchorInvalid},
			{"cannot sign certificates", admin, makeCert(t, "nosign", ecKey(t, elliptic.P256()), nil, certOpts{keyUsage: x509.KeyUsageDigitalSignature}).cert.Raw, ErrTrustAnchorInvalid},
			{"expired", admin, makeCert(t, "old CA", ecKey(t, elliptic.P256()), nil, certOpts{notAfter: expired}).cert.Raw, ErrTrustAnchorInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := td.RegisterTrustAnchor(ctx, tc.sid, tc.der, Approvals{})
				wantRefusal(t, err, tc.want)
			})
		}
		if n := len(td.TrustAnchors()); n != 0 {
			t.Fatalf("%d anchors after refusals", n)
		}
	})

	t.Run("accepted key types", func(t *testing.T) {
		td, admin := activated(t)
		for _, key := range []crypto.Signer{ecKey(t, elliptic.P384()), ecKey(t, elliptic.P521()), rsa2048()} {
			c := makeCert(t, "CA", key, nil, certOpts{})
			a, err := td.RegisterTrustAnchor(ctx, admin, c.cert.Raw, Approvals{})
			noErr(t, err)
			if !a.Certificate.Equal(c.cert) {
				t.Fatalf("registered %v, want %v", a.Certificate.Subject, c.cert.Subject)
			}
			_, err = td.DeregisterTrustAnchor(ctx, admin, a.Ref, false, Approvals{})
			noErr(t, err)
		}
	})

	t.Run("at most two, each once, references never reused", func(t *testing.T) {
		a1, err := td.RegisterTrustAnchor(ctx, admin, good.cert.Raw, Approvals{})
		noErr(t, err)
		_, err = td.RegisterTrustAnchor(ctx, admin, good.cert.Raw, Approvals{})
		wantRefusal(t, err, ErrTrustAnchorExists)
		second := makeCert(t, "second CA", rsa2048(), nil, certOpts{})
		a2, err := td.RegisterTrustAnchor(ctx, admin, second.cert.Raw, Approvals{})
		noErr(t, err)
		third := makeCert(t, "third CA", ecKey(t, elliptic.P256()), nil, certOpts{})
		_, err = td.RegisterTrustAnchor(ctx, admin, third.cert.Raw, Approvals{})
		wantRefusal(t, err, ErrTrustAnchorLimit)
		if a1.Ref != 1 || a2.Ref != 2 {
			t.Fatalf("references %d %d, want 1 2", a1.Ref, a2.Ref)
		}
		removed, err := td.DeregisterTrustAnchor(ctx, admin, a1.Ref, false, Approvals{})
		noErr(t, err)
		if len(removed) != 1 || removed[0].Ref != 1 {
			t.Fatalf("removed %+v", removed)
		}
		a3, err := td.RegisterTrustAnchor(ctx, admin, third.cert.Raw, Approvals{})
		noErr(t, err)
		if a3.Ref != 3 {
			t.Fatalf("reference %d after deregistering 1, want 3 (never reused)", a3.Ref)
		}
		if got := refs(td.TrustAnchors()); !slices.Equal(got, []uint32{2, 3}) {
			t.Fatalf("anchors %v, want [2 3]", got)
		}
	})
	if !audited(td, "mtls.register-trust-anchor:ok") || !audited(td, "mtls.register-trust-anchor:CKR_ARGUMENTS_BAD") ||
		!audited(td, "mtls.deregister-trust-anchor:ok") {
		t.Errorf("audit: %v", td.audit.ops())
	}
}

func refs(as []TrustAnchor) []uint32 {
	var out []uint32
	for _, a := range as {
		out = append(out, a.Ref)
	}
	return out
}

// mtlsDevice is an activated device with one registered client CA, a
// client certificate it issued, and a crypto user.
type mtlsDevice struct {
	*testDevice
	admin, cu SessionID
	ca        *testCert
	client    []*x509.Certificate
}

func newMTLSDevice(t testing.TB) *mtlsDevice {
	t.Helper()
	td, admin := activated(t)
	cu := withCU(t, td, admin, "alice")
	ca := makeCert(t, "client CA", ecKey(t, elliptic.P256()), nil, certOpts{})
	_, err := td.RegisterTrustAnchor(t.Context(), admin, ca.cert.Raw, Approvals{})
	noErr(t, err)
	leaf := makeCert(t, "client", ecKey(t, elliptic.P256()), ca, certOpts{leaf: true, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return &mtlsDevice{td, admin, cu, ca, []*x509.Certificate{leaf.cert}}
}

func TestDeregisterTrustAnchor(t *testing.T) {
	ctx := t.Context()
	md := newMTLSDevice(t)
	other := makeCert(t, "other CA", ecKey(t, elliptic.P256()), nil, certOpts{})
	_, err := md.RegisterTrustAnchor(ctx, md.admin, other.cert.Raw, Approvals{})
	noErr(t, err)

	for _, tc := range []struct {
		name string
		sid  SessionID
		ref  uint32
		all  bool
		want *Kind
	}{
		{"crypto user", md.cu, 1, false, ErrRoleNotPermitted},
		{"not logged in", md.OpenSession(), 1, false, ErrNotLoggedIn},
		{"unknown reference", md.admin, 7, false, ErrTrustAnchorNotFound},
		{"neither", md.admin, 0, false, ErrArgumentsBad},
		{"both", md.admin, 1, true, ErrArgumentsBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := md.DeregisterTrustAnchor(ctx, tc.sid, tc.ref, tc.all, Approvals{})
			wantRefusal(t, err, tc.want)
		})
	}

	noErr(t, md.SetMTLSEnforcement(ctx, md.admin, MTLSCluster, md.client, Approvals{}))
	// Enforced: one anchor may go, not the last, and not all.
	_, err = md.DeregisterTrustAnchor(ctx, md.admin, 0, true, Approvals{})
	wantRefusal(t, err, ErrMTLSEnforced)
	_, err = md.DeregisterTrustAnchor(ctx, md.admin, 2, false, Approvals{})
	noErr(t, err)
	_, err = md.DeregisterTrustAnchor(ctx, md.admin, 1, false, Approvals{})
	wantRefusal(t, err, ErrMTLSEnforced)
	if got := refs(md.TrustAnchors()); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("anchors %v, want [1]", got)
	}
	// Not enforced: all go.
	noErr(t, md.SetMTLSEnforcement(ctx, md.admin, MTLSNone, nil, Approvals{}))
	removed, err := md.DeregisterTrustAnchor(ctx, md.admin, 0, true, Approvals{})
	noErr(t, err)
	if got := refs(removed); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("removed %v, want [1]", got)
	}
	removed, err = md.DeregisterTrustAnchor(ctx, md.admin, 0, true, Approvals{})
	if err != nil || len(removed) != 0 {
		t.Fatalf("deregister all of none: %v, %v", removed, err)
	}
	if !audited(md.testDevice, "mtls.deregister-trust-anchor:CKR_FUNCTION_FAILED") {
		t.Errorf("audit: %v", md.audit.ops())
	}
}

func TestSetMTLSEnforcement(t *testing.T) {
	ctx := t.Context()

	t.Run("needs an anchor", func(t *testing.T) {
		td, admin := activated(t)
		wantRefusal(t, td.SetMTLSEnforcement(ctx, admin, MTLSCluster, nil, Approvals{}), ErrNoTrustAnchor)
		noErr(t, td.SetMTLSEnforcement(ctx, admin, MTLSNone, nil, Approvals{}))
	})

	md := newMTLSDevice(t)
	stranger := makeCert(t, "stranger CA", ecKey(t, elliptic.P256()), nil, certOpts{})
	inter := makeCert(t, "intermediate", ecKey(t, elliptic.P256()), md.ca, certOpts{})
	viaInter := makeCert(t, "via intermediate", ecKey(t, elliptic.P256()), inter, certOpts{leaf: true})
	leaf := func(parent *testCert, o certOpts) []*x509.Certificate {
		o.leaf = true
		return []*x509.Certificate{makeCert(t, "c", ecKey(t, elliptic.P256()), parent, o).cert}
	}
	for _, tc := range []struct {
		name  string
		sid   SessionID
		level MTLSLevel
		chain []*x509.Certificate
		want  *Kind
	}{
		{"crypto user", md.cu, MTLSCluster, md.client, ErrRoleNotPermitted},
		{"not logged in", md.OpenSession(), MTLSCluster, md.client, ErrNotLoggedIn},
		{"bad level", md.admin, 3, md.client, ErrArgumentsBad},
		{"no client certificate", md.admin, MTLSCluster, nil, ErrClientCertificate},
		{"another CA's certificate", md.admin, MTLSCluster, leaf(stranger, certOpts{}), ErrClientCertificate},
		{"server-only certificate", md.admin, MTLSCluster, leaf(md.ca, certOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), ErrClientCertificate},
		{"expired certificate", md.admin, MTLSCluster, leaf(md.ca, certOpts{notAfter: time.Now().Add(-time.Minute)}), ErrClientCertificate},
		{"intermediate missing", md.admin, MTLSCluster, []*x509.Certificate{viaInter.cert}, ErrClientCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, md.SetMTLSEnforcement(ctx, tc.sid, tc.level, tc.chain, Approvals{}), tc.want)
			if l := md.ClientTLSPolicy().Level(); l != MTLSNone {
				t.Fatalf("level %v after a refusal", l)
			}
		})
	}

	// With the intermediate, and with a certificate naming no usage at all.
	noErr(t, md.ClientTLSPolicy().VerifyClient([]*x509.Certificate{viaInter.cert, inter.cert}, time.Now()))
	noErr(t, md.SetMTLSEnforcement(ctx, md.admin, MTLSCluster, leaf(md.ca, certOpts{}), Approvals{}))
	for _, sid := range []SessionID{md.admin, md.cu} {
		l, err := md.MTLSEnforcement(sid)
		noErr(t, err)
		if l != MTLSCluster {
			t.Fatalf("MTLSEnforcement = %v", l)
		}
	}
	_, err := md.MTLSEnforcement(md.OpenSession())
	wantRefusal(t, err, ErrNotLoggedIn)
	noErr(t, md.CreateUser(ctx, md.admin, "appl", RoleApplianceUser, cuPW, Approvals{}))
	_, err = md.MTLSEnforcement(loginAs(t, md.testDevice, RoleApplianceUser, "appl", cuPW))
	wantRefusal(t, err, ErrRoleNotPermitted)
	// Setting the same level again is fine.
	noErr(t, md.SetMTLSEnforcement(ctx, md.admin, MTLSCluster, md.client, Approvals{}))
	if !audited(md.testDevice, "mtls.set-enforcement:ok") || !audited(md.testDevice, "mtls.set-enforcement:CKR_FUNCTION_FAILED") {
		t.Errorf("audit: %v", md.audit.ops())
	}
}

func TestMTLSGuardedByQuorum(t *testing.T) {
	ctx := t.Context()
	td, ap := quorumCluster(t, Config{})
	admin, a1, a2 := ap[0], ap[1], ap[2]
	noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumQuorumManagement, 2, false, Approvals{}))
	ca := makeCert(t, "client CA", ecKey(t, elliptic.P256()), nil, certOpts{})
	_, err := td.RegisterTrustAnchor(ctx, admin.sid, ca.cert.Raw, Approvals{})
	wantRefusal(t, err, ErrQuorumRequired)
	tok, err := td.QuorumToken(ctx, admin.sid, QuorumQuorumManagement)
	noErr(t, err)
	a, err := td.RegisterTrustAnchor(ctx, admin.sid, ca.cert.Raw, Approvals{tok.ID, []Approval{a1.approve(t, tok), a2.approve(t, tok)}})
	noErr(t, err)
	// The token was spent.
	_, err = td.DeregisterTrustAnchor(ctx, admin.sid, a.Ref, false, Approvals{tok.ID, []Approval{a1.approve(t, tok), a2.approve(t, tok)}})
	wantRefusal(t, err, ErrTokenExpired)
	client := makeCert(t, "client", ecKey(t, elliptic.P256()), ca, certOpts{leaf: true})
	wantRefusal(t, td.SetMTLSEnforcement(ctx, admin.sid, MTLSCluster, []*x509.Certificate{client.cert}, Approvals{}), ErrQuorumRequired)
	// Setting the level it has changes nothing and needs no approval.
	noErr(t, td.SetMTLSEnforcement(ctx, admin.sid, MTLSNone, nil, Approvals{}))
}

func TestMTLSSettingsPersistAndReplicate(t *testing.T) {
	ctx := t.Context()
	md := newMTLSDevice(t)
	noErr(t, md.SetMTLSEnforcement(ctx, md.admin, MTLSCluster, md.client, Approvals{}))

	// A restart loads them from the store.
	re := md.reopen(t)
	p := re.ClientTLSPolicy()
	if p.Level() != MTLSCluster || len(p.Anchors()) != 1 || !p.Anchors()[0].Certificate.Equal(md.ca.cert) {
		t.Fatalf("after reopen: level %v, anchors %v", p.Level(), p.Anchors())
	}
	noErr(t, p.VerifyClient(md.client, time.Now()))

	// A peer's record replaces this device's settings (Reload, as peersync
	// delivers it); a malformed one is refused and changes nothing.
	peer := newTestDevice(t)
	md.store.mu.Lock()
	rec := slices.Clone(md.store.recs[RecordSetting][mtlsSettingsID])
	md.store.mu.Unlock()
	noErr(t, peer.Reload(RecordSetting, mtlsSettingsID, func() ([]byte, error) { return slices.Clone(rec), nil }))
	if got := peer.ClientTLSPolicy(); got.Level() != MTLSCluster || len(got.Anchors()) != 1 {
		t.Fatalf("after reload: level %v, anchors %v", got.Level(), got.Anchors())
	}
	if err := peer.Reload(RecordSetting, mtlsSettingsID, func() ([]byte, error) { return []byte{9}, nil }); !errors.Is(err, errMTLSRecord) {
		t.Fatalf("reload of a malformed record: %v", err)
	}
	if peer.ClientTLSPolicy().Level() != MTLSCluster {
		t.Fatal("a malformed record changed the settings")
	}
}

func TestMTLSRecord(t *testing.T) {
	ca := makeCert(t, "client CA", ecKey(t, elliptic.P256()), nil, certOpts{})
	ca2 := makeCert(t, "client CA 2", ecKey(t, elliptic.P256()), nil, certOpts{})
	p := newPolicy(MTLSCluster, []TrustAnchor{{Ref: 4, Certificate: ca2.cert}, {Ref: 2, Certificate: ca.cert}}, 5)
	b := p.marshal()
	got, err := unmarshalPolicy(b)
	noErr(t, err)
	if got.Level() != MTLSCluster || !slices.Equal(refs(got.Anchors()), []uint32{2, 4}) || got.next != 5 ||
		!slices.Equal(got.marshal(), b) {
		t.Fatalf("round trip: %+v", got)
	}
	enc := func(level byte, next uint64, anchors ...TrustAnchor) []byte {
		w := fieldWriter{b: []byte{mtlsFormat, level}}
		w.uvarint(next)
		w.uvarint(uint64(len(anchors)))
		for _, a := range anchors {
			w.uvarint(uint64(a.Ref))
			w.bytes(a.Certificate.Raw)
		}
		return w.b
	}
	one := TrustAnchor{Ref: 1, Certificate: ca.cert}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown format", append([]byte{2}, b[1:]...)},
		{"level 0", enc(0, 2, one)},
		{"level 3", enc(3, 2, one)},
		{"reference 0", enc(1, 2, TrustAnchor{Ref: 0, Certificate: ca.cert})},
		{"reference not below next", enc(1, 1, one)},
		{"duplicate reference", enc(1, 3, one, one)},
		{"three anchors", enc(1, 4, one, TrustAnchor{Ref: 2, Certificate: ca.cert}, TrustAnchor{Ref: 3, Certificate: ca.cert})},
		{"not a certificate", enc(1, 2, TrustAnchor{Ref: 1, Certificate: &x509.Certificate{Raw: []byte("junk")}})},
		{"trailing bytes", append(slices.Clone(b), 0)},
		{"truncated", b[:len(b)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := unmarshalPolicy(tc.b); !errors.Is(err, errMTLSRecord) {
				t.Fatalf("unmarshal: %v, want errMTLSRecord", err)
			}
		})
	}
}
