package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// quorumKeys are the approvers' keys, generated once: two RSA-2048 and an
// ECDSA key on each allowed curve.
var quorumKeys = sync.OnceValue(func() []crypto.Signer {
	var out []crypto.Signer
	for _, gen := range []func() (crypto.Signer, error){
		func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
	} {
		k, err := gen()
		if err != nil {
			panic(err)
		}
		out = append(out, k)
	}
	return out
})

// approver is an admin with a registered quorum key.
type approver struct {
	name string
	sid  SessionID
	key  crypto.Signer
}

// approve signs a token's Data: RSA PKCS #1 v1.5 or ECDSA ASN.1, SHA-256.
func (a approver) approve(t testing.TB, tok QuorumTokenInfo) Approval {
	t.Helper()
	digest := sha256.Sum256(tok.Data)
	sig, err := a.key.Sign(rand.Reader, digest[:], crypto.SHA256)
	noErr(t, err)
	return Approval{Username: a.name, Signature: sig}
}

func spkiDER(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	noErr(t, err)
	return der
}

// quorumCluster activates a device with four admins ("admin", a1, a2, a3),
// each with a registered quorum key, and a crypto user alice.
func quorumCluster(t testing.TB, cfg Config) (*testDevice, []approver) {
	t.Helper()
	ctx := t.Context()
	td := newDeviceWith(t, cfg)
	admin := activateDevice(t, td)
	noErr(t, td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	out := []approver{{name: DefaultAdminName, sid: admin}}
	for _, n := range []string{"a1", "a2", "a3"} {
		noErr(t, td.CreateUser(ctx, admin, n, RoleAdmin, adminPW, Approvals{}))
		out = append(out, approver{name: n, sid: loginAs(t, td, RoleAdmin, n, adminPW)})
	}
	for i := range out {
		out[i].key = quorumKeys()[i]
		noErr(t, td.RegisterQuorumKey(ctx, out[i].sid, spkiDER(t, out[i].key.Public())))
	}
	return td, out
}

func (td *testDevice) tokenIDs(t testing.TB, sid SessionID) []string {
	t.Helper()
	toks, err := td.ListQuorumTokens(sid)
	noErr(t, err)
	var ids []string
	for _, tok := range toks {
		ids = append(ids, tok.ID)
	}
	return ids
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestQuorumServiceString(t *testing.T) {
	for s, want := range map[QuorumService]string{
		QuorumUserManagement: "user-management", QuorumQuorumManagement: "quorum-management",
		0: "invalid-quorum-service", 3: "invalid-quorum-service",
	} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}

func TestRegisterQuorumKey(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	cu := withCU(t, td, admin, "alice")
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	noErr(t, err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	noErr(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	noErr(t, err)
	good := spkiDER(t, quorumKeys()[1].Public())
	tests := []struct {
		name string
		sid  SessionID
		der  []byte
		want *Kind
	}{
		{"RSA-2048", admin, spkiDER(t, quorumKeys()[0].Public()), nil},
		{"P-256", admin, good, nil},
		{"P-384", admin, spkiDER(t, quorumKeys()[2].Public()), nil},
		{"RSA-1024", admin, spkiDER(t, &rsa1024.PublicKey), ErrArgumentsBad},
		{"P-521", admin, spkiDER(t, &p521.PublicKey), ErrArgumentsBad},
		{"Ed25519", admin, spkiDER(t, edPub), ErrArgumentsBad},
		{"garbage", admin, []byte("not a key"), ErrArgumentsBad},
		{"trailing data", admin, append(slices.Clone(good), 0), ErrArgumentsBad},
		{"crypto user", cu, good, ErrRoleNotPermitted},
		{"not logged in", td.OpenSession(), good, ErrNotLoggedIn},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := td.RegisterQuorumKey(ctx, tc.sid, tc.der)
			if tc.want == nil {
				noErr(t, err)
				if u := storedUser(t, td, DefaultAdminName); !bytes.Equal(u.QuorumKey, tc.der) {
					t.Fatal("quorum key not stored")
				}
				return
			}
			wantRefusal(t, err, tc.want)
		})
	}
	users, err := td.ListUsers(admin)
	noErr(t, err)
	if !users[0].QuorumKey || users[1].QuorumKey {
		t.Fatalf("ListUsers quorum keys: %+v", users)
	}
	if !audited(td, "quorum.register-key:ok") || !audited(td, "quorum.register-key:CKR_ARGUMENTS_BAD") {
		t.Errorf("audit: %v", td.audit.ops())
	}
}

func TestQuorumUserManagement(t *testing.T) {
	ctx := t.Context()
	td, ap := quorumCluster(t, Config{})
	admin, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
	noErr(t, td.CreateUser(ctx, admin.sid, "nokey", RoleAdmin, adminPW, Approvals{}))
	// With M = 1 the acting admin suffices.
	if _, err := td.verifyQuorumN(ctx, QuorumUserManagement, td.settings().quorum(QuorumUserManagement), &principal{name: admin.name, role: RoleAdmin}, Approvals{}); err != nil {
		t.Fatalf("M = 1: %v", err)
	}
	noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 2, false, Approvals{}))

	err := td.CreateUser(ctx, admin.sid, "bob", RoleCryptoUser, cuPW, Approvals{})
	wantRefusal(t, err, ErrQuorumRequired)
	if !strings.Contains(err.Error(), "needs 2 approvals, has 0") {
		t.Errorf("message: %v", err)
	}
	tok, err := td.QuorumToken(ctx, admin.sid, QuorumUserManagement)
	noErr(t, err)
	otherTok, err := td.QuorumToken(ctx, admin.sid, QuorumQuorumManagement)
	noErr(t, err)
	a1Tok, err := td.QuorumToken(ctx, a1.sid, QuorumUserManagement)
	noErr(t, err)
	forged := a2.approve(t, otherTok)

	tests := []struct {
		name string
		ap   Approvals
		want *Kind
		msg  string
	}{
		{"one approval", Approvals{tok.ID, []Approval{a1.approve(t, tok)}}, ErrQuorumRequired, "needs 2 approvals, has 1"},
		{"signatures without token", Approvals{"", []Approval{a1.approve(t, tok), a2.approve(t, tok)}}, ErrTokenExpired, ""},
		{"unknown token", Approvals{"feed", []Approval{a1.approve(t, tok), a2.approve(t, tok)}}, ErrTokenExpired, ""},
		{"other service's token", Approvals{otherTok.ID, []Approval{a1.approve(t, otherTok), a2.approve(t, otherTok)}}, ErrTokenExpired, ""},
		{"another admin's token", Approvals{a1Tok.ID, []Approval{a2.approve(t, a1Tok), a3.approve(t, a1Tok)}}, ErrTokenExpired, ""},
		{"signature over other data", Approvals{tok.ID, []Approval{a1.approve(t, tok), forged}}, ErrQuorumInvalid, "a2"},
		{"signature by another key", Approvals{tok.ID, []Approval{a1.approve(t, tok), {"a3", a2.approve(t, tok).Signature}}}, ErrQuorumInvalid, "a3"},
		{"duplicate approver", Approvals{tok.ID, []Approval{a1.approve(t, tok), a1.approve(t, tok)}}, ErrQuorumInvalid, "two approvals"},
		{"crypto user approver", Approvals{tok.ID, []Approval{a1.approve(t, tok), {"alice", a2.approve(t, tok).Signature}}}, ErrQuorumInvalid, "not an admin"},
		{"unknown approver", Approvals{tok.ID, []Approval{a1.approve(t, tok), {"ghost", a2.approve(t, tok).Signature}}}, ErrQuorumInvalid, "not an admin"},
		{"approver without key", Approvals{tok.ID, []Approval{a1.approve(t, tok), {"nokey", a2.approve(t, tok).Signature}}}, ErrQuorumInvalid, "no quorum key"},
		{"empty signature", Approvals{tok.ID, []Approval{a1.approve(t, tok), {"a2", nil}}}, ErrQuorumInvalid, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := td.CreateUser(ctx, admin.sid, "bob", RoleCryptoUser, cuPW, tc.ap)
			wantRefusal(t, err, tc.want)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", err, tc.msg)
			}
		})
	}
	if td.user("bob") != nil {
		t.Fatal("bob created without quorum")
	}
	// A failed operation does not consume the token.
	good := Approvals{tok.ID, []Approval{admin.approve(t, tok), a1.approve(t, tok)}}
	wantRefusal(t, td.CreateUser(ctx, admin.sid, "alice", RoleCryptoUser, cuPW, good), ErrUserExists)
	if !slices.Contains(td.tokenIDs(t, admin.sid), tok.ID) {
		t.Fatal("a failed operation consumed the token")
	}
	// The acting admin's own approval counts; success consumes the token.
	noErr(t, td.CreateUser(ctx, admin.sid, "bob", RoleCryptoUser, cuPW, good))
	if slices.Contains(td.tokenIDs(t, admin.sid), tok.ID) {
		t.Fatal("the token outlived its operation")
	}
	wantRefusal(t, td.CreateUser(ctx, admin.sid, "carol", RoleCryptoUser, cuPW, good), ErrTokenExpired)

	// Deleting a user and resetting another's password need quorum too;
	// changing one's own does not.
	wantRefusal(t, td.DeleteUser(ctx, admin.sid, "bob", false, Approvals{}), ErrQuorumRequired)
	wantRefusal(t, td.ChangePassword(ctx, admin.sid, "bob", "new-password", Approvals{}), ErrQuorumRequired)
	noErr(t, td.ChangePassword(ctx, a1.sid, "a1", "new-password", Approvals{}))
	bob := loginAs(t, td, RoleCryptoUser, "bob", cuPW)
	noErr(t, td.ChangePassword(ctx, bob, "bob", "bobs-password", Approvals{}))

	tok, err = td.QuorumToken(ctx, a2.sid, QuorumUserManagement)
	noErr(t, err)
	noErr(t, td.ChangePassword(ctx, a2.sid, "bob", "reset-password", Approvals{tok.ID, []Approval{a3.approve(t, tok), a1.approve(t, tok)}}))
	tok, err = td.QuorumToken(ctx, a2.sid, QuorumUserManagement)
	noErr(t, err)
	noErr(t, td.DeleteUser(ctx, a2.sid, "bob", false, Approvals{tok.ID, []Approval{a3.approve(t, tok), a1.approve(t, tok)}}))

	// A locked admin's approval does not count.
	s := td.OpenSession()
	for range 5 {
		wantRefusal(t, td.Login(ctx, s, RoleAdmin, "a3", "wrong-password"), ErrPinIncorrect)
	}
	tok, err = td.QuorumToken(ctx, a2.sid, QuorumUserManagement)
	noErr(t, err)
	err = td.CreateUser(ctx, a2.sid, "dave", RoleCryptoUser, cuPW, Approvals{tok.ID, []Approval{a2.approve(t, tok), a3.approve(t, tok)}})
	wantRefusal(t, err, ErrQuorumInvalid)
	if !audited(td, "user.create:CKR_FUNCTION_REJECTED") {
		t.Error("quorum refusal not audited")
	}
}

func TestQuorumTokenExpiry(t *testing.T) {
	ctx := t.Context()
	clock := &testClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	td, ap := quorumCluster(t, Config{Now: clock.Now, QuorumTokenTTL: time.Minute})
	admin, a1 := ap[0], ap[1]
	noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 2, false, Approvals{}))
	tok, err := td.QuorumToken(ctx, admin.sid, QuorumUserManagement)
	noErr(t, err)
	if want := clock.Now().Add(time.Minute); !tok.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", tok.Expires, want)
	}
	good := Approvals{tok.ID, []Approval{admin.approve(t, tok), a1.approve(t, tok)}}
	clock.Add(time.Minute)
	err = td.CreateUser(ctx, admin.sid, "bob", RoleCryptoUser, cuPW, good)
	wantRefusal(t, err, ErrTokenExpired)
	if ids := td.tokenIDs(t, admin.sid); len(ids) != 0 {
		t.Fatalf("expired tokens listed: %v", ids)
	}
	// A fresh token just before its expiry works.
	tok, err = td.QuorumToken(ctx, admin.sid, QuorumUserManagement)
	noErr(t, err)
	clock.Add(time.Minute - time.Nanosecond)
	noErr(t, td.CreateUser(ctx, admin.sid, "bob", RoleCryptoUser, cuPW,
		Approvals{tok.ID, []Approval{admin.approve(t, tok), a1.approve(t, tok)}}))
}

func TestSetQuorumValue(t *testing.T) {
	ctx := t.Context()
	t.Run("rules", func(t *testing.T) {
		td, admin := activated(t)
		cu := withCU(t, td, admin, "alice")
		tests := []struct {
			name    string
			sid     SessionID
			service QuorumService
			m       int
			want    *Kind
		}{
			{"zero", admin, QuorumUserManagement, 0, ErrQuorumValue},
			{"nine", admin, QuorumUserManagement, 9, ErrQuorumValue},
			{"no service", admin, 0, 1, ErrArgumentsBad},
			{"unknown service", admin, 3, 1, ErrArgumentsBad},
			{"crypto user", cu, QuorumUserManagement, 1, ErrRoleNotPermitted},
			{"not logged in", td.OpenSession(), QuorumUserManagement, 1, ErrNotLoggedIn},
			{"one admin, M=2", admin, QuorumUserManagement, 2, ErrLastAdmins},
			{"one admin, M=8", admin, QuorumQuorumManagement, 8, ErrLastAdmins},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantRefusal(t, td.SetQuorumValue(ctx, tc.sid, tc.service, tc.m, false, Approvals{}), tc.want)
			})
		}
		noErr(t, td.SetQuorumValue(ctx, admin, QuorumUserManagement, 2, true, Approvals{}))
		vals, err := td.QuorumValues(cu)
		noErr(t, err)
		if vals[QuorumUserManagement] != 2 || vals[QuorumQuorumManagement] != 1 {
			t.Fatalf("QuorumValues = %v", vals)
		}
		_, err = td.QuorumValues(td.OpenSession())
		wantRefusal(t, err, ErrNotLoggedIn)
		// Persisted.
		td2 := td.reopen(t)
		vals, err = td2.QuorumValues(loginAs(t, td2, RoleCryptoUser, "alice", cuPW))
		noErr(t, err)
		if vals[QuorumUserManagement] != 2 {
			t.Fatalf("after reopen QuorumValues = %v", vals)
		}
		// Lowering M needs the service's own quorum, which one admin cannot
		// give: forcing M above the admins - 2 rule strands the service.
		wantRefusal(t, td.SetQuorumValue(ctx, admin, QuorumUserManagement, 1, false, Approvals{}), ErrQuorumRequired)
		if !audited(td, "quorum.set:ok") || !audited(td, "quorum.set:CKR_ARGUMENTS_BAD") {
			t.Errorf("audit: %v", td.audit.ops())
		}
	})
	t.Run("guarded by quorum management", func(t *testing.T) {
		td, ap := quorumCluster(t, Config{})
		admin, a1, a2 := ap[0], ap[1], ap[2]
		noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumQuorumManagement, 2, false, Approvals{}))
		wantRefusal(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 2, false, Approvals{}), ErrQuorumRequired)
		um, err := td.QuorumToken(ctx, admin.sid, QuorumUserManagement)
		noErr(t, err)
		wantRefusal(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 2, false,
			Approvals{um.ID, []Approval{a1.approve(t, um), a2.approve(t, um)}}), ErrTokenExpired)
		qm, err := td.QuorumToken(ctx, admin.sid, QuorumQuorumManagement)
		noErr(t, err)
		// The M + 2 rule is checked before the approvals are spent.
		wantRefusal(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 3, false,
			Approvals{qm.ID, []Approval{a1.approve(t, qm), a2.approve(t, qm)}}), ErrLastAdmins)
		noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 2, false,
			Approvals{qm.ID, []Approval{a1.approve(t, qm), a2.approve(t, qm)}}))
		// With M = 2 for users and 4 admins, deleting an admin would leave 3 < 4.
		wantRefusal(t, td.DeleteUser(ctx, admin.sid, "a3", false, Approvals{}), ErrLastAdmins)
	})
}

// TestLowerQuorumNeedsServiceQuorum: with quorum management at M=1 one
// admin may raise a service's M, but lowering it needs as many approvals as
// the service's current M, on a quorum-management token.
func TestLowerQuorumNeedsServiceQuorum(t *testing.T) {
	ctx := t.Context()
	td, ap := quorumCluster(t, Config{})
	admin, a1, a2 := ap[0], ap[1], ap[2]
	noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 2, false, Approvals{}))
	qmToken := func() QuorumTokenInfo {
		tok, err := td.QuorumToken(ctx, admin.sid, QuorumQuorumManagement)
		noErr(t, err)
		return tok
	}
	umTok, err := td.QuorumToken(ctx, admin.sid, QuorumUserManagement)
	noErr(t, err)
	tests := []struct {
		name string
		ap   func() Approvals
		want *Kind
	}{
		{"no approvals", func() Approvals { return Approvals{} }, ErrQuorumRequired},
		{"one approval", func() Approvals {
			tok := qmToken()
			return Approvals{tok.ID, []Approval{a1.approve(t, tok)}}
		}, ErrQuorumRequired},
		{"user-management token", func() Approvals {
			return Approvals{umTok.ID, []Approval{a1.approve(t, umTok), a2.approve(t, umTok)}}
		}, ErrTokenExpired},
		{"one admin twice", func() Approvals {
			tok := qmToken()
			return Approvals{tok.ID, []Approval{a1.approve(t, tok), a1.approve(t, tok)}}
		}, ErrQuorumInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 1, false, tc.ap()), tc.want)
		})
	}
	if vals, err := td.QuorumValues(admin.sid); err != nil || vals[QuorumUserManagement] != 2 {
		t.Fatalf("QuorumValues = %v, %v; want user-management still 2", vals, err)
	}
	tok := qmToken()
	noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 1, false,
		Approvals{tok.ID, []Approval{a1.approve(t, tok), a2.approve(t, tok)}}))
	if vals, err := td.QuorumValues(admin.sid); err != nil || vals[QuorumUserManagement] != 1 {
		t.Fatalf("QuorumValues = %v, %v; want user-management 1", vals, err)
	}
}

func TestQuorumTokens(t *testing.T) {
	ctx := t.Context()
	clock := &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	td := newDeviceWith(t, Config{Now: clock.Now})
	admin := activateDevice(t, td)
	cu := withCU(t, td, admin, "alice")
	noErr(t, td.CreateUser(ctx, admin, "a1", RoleAdmin, adminPW, Approvals{}))
	a1 := loginAs(t, td, RoleAdmin, "a1", adminPW)

	_, err := td.QuorumToken(ctx, cu, QuorumUserManagement)
	wantRefusal(t, err, ErrRoleNotPermitted)
	_, err = td.ListQuorumTokens(cu)
	wantRefusal(t, err, ErrRoleNotPermitted)
	wantRefusal(t, td.DeleteQuorumToken(cu, "x"), ErrRoleNotPermitted)
	_, err = td.QuorumToken(ctx, admin, 7)
	wantRefusal(t, err, ErrArgumentsBad)

	var issued []QuorumTokenInfo
	for _, s := range []QuorumService{QuorumUserManagement, QuorumQuorumManagement, QuorumUserManagement} {
		tok, err := td.QuorumToken(ctx, admin, s)
		noErr(t, err)
		if tok.Service != s || tok.Issuer != DefaultAdminName || len(tok.ID) != 32 {
			t.Fatalf("token %+v", tok)
		}
		if !bytes.HasPrefix(tok.Data, []byte(tokenMagic)) || !bytes.Contains(tok.Data, []byte(tok.ID)) ||
			!bytes.Contains(tok.Data, []byte(DefaultAdminName)) || tok.Data[len(tokenMagic)] != byte(s) {
			t.Fatalf("token data %q", tok.Data)
		}
		issued = append(issued, tok)
		clock.Add(time.Second)
	}
	if bytes.Equal(issued[0].Data, issued[2].Data) {
		t.Fatal("two tokens have the same data")
	}
	got := td.tokenIDs(t, a1)
	want := []string{issued[0].ID, issued[1].ID, issued[2].ID}
	if !slices.Equal(got, want) {
		t.Fatalf("ListQuorumTokens = %v, want %v (soonest expiry first)", got, want)
	}
	wantRefusal(t, td.DeleteQuorumToken(admin, "no-such-token"), ErrTokenExpired)
	noErr(t, td.DeleteQuorumToken(a1, issued[1].ID))
	wantRefusal(t, td.DeleteQuorumToken(a1, issued[1].ID), ErrTokenExpired)
	if got := td.tokenIDs(t, admin); !slices.Equal(got, []string{issued[0].ID, issued[2].ID}) {
		t.Fatalf("after delete: %v", got)
	}
	if !audited(td, "quorum.token-delete:ok") || !audited(td, "quorum.token:ok") {
		t.Errorf("audit: %v", td.audit.ops())
	}

	// A deleted admin's tokens go with it.
	tok, err := td.QuorumToken(ctx, a1, QuorumUserManagement)
	noErr(t, err)
	noErr(t, td.DeleteUser(ctx, admin, "a1", true, Approvals{}))
	if slices.Contains(td.tokenIDs(t, admin), tok.ID) {
		t.Fatal("deleted admin's token outlived it")
	}

	// The number of outstanding tokens is bounded; expired ones make room.
	for range maxQuorumTokens - 2 {
		_, err := td.QuorumToken(ctx, admin, QuorumUserManagement)
		noErr(t, err)
	}
	_, err = td.QuorumToken(ctx, admin, QuorumUserManagement)
	wantRefusal(t, err, ErrDeviceMemory)
	clock.Add(td.cfg.QuorumTokenTTL)
	_, err = td.QuorumToken(ctx, admin, QuorumUserManagement)
	noErr(t, err)
}

func TestVerifyApproval(t *testing.T) {
	data := []byte("token data")
	digest := sha256.Sum256(data)
	for i, k := range quorumKeys() {
		sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
		noErr(t, err)
		der := spkiDER(t, k.Public())
		if err := verifyApproval(der, data, sig); err != nil {
			t.Errorf("key %d: %v", i, err)
		}
		if err := verifyApproval(der, []byte("other data"), sig); !errors.Is(err, errBadApproval) {
			t.Errorf("key %d over other data: %v", i, err)
		}
		sig[len(sig)/2] ^= 1
		if err := verifyApproval(der, data, sig); !errors.Is(err, errBadApproval) {
			t.Errorf("key %d with a changed signature: %v", i, err)
		}
	}
	// RSA-PSS is not the approval scheme.
	k := quorumKeys()[0].(*rsa.PrivateKey)
	pss, err := rsa.SignPSS(rand.Reader, k, crypto.SHA256, digest[:], nil)
	noErr(t, err)
	if err := verifyApproval(spkiDER(t, k.Public()), data, pss); !errors.Is(err, errBadApproval) {
		t.Errorf("PSS signature accepted: %v", err)
	}
}

func TestClusterSettingsRecord(t *testing.T) {
	for _, c := range []clusterSettings{
		defaultClusterSettings(),
		{Activated: true, QuorumUserMgmt: 3, QuorumQuorumMgmt: 8},
		{Activated: true, QuorumUserMgmt: 8, QuorumQuorumMgmt: 2},
	} {
		b := c.marshal()
		if b[0] != clusterFormat {
			t.Fatalf("first byte %d, want format %d", b[0], clusterFormat)
		}
		var got clusterSettings
		noErr(t, got.unmarshal(b))
		if got != c {
			t.Errorf("round trip of %+v gave %+v", c, got)
		}
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   {2, 1, 1, 1},
		"bad bool":  {1, 2, 1, 1},
		"zero M":    {1, 1, 0, 1},
		"M of 9":    {1, 1, 1, 9},
		"truncated": {1, 1, 1},
		"trailing":  {1, 1, 1, 1, 0},
	} {
		c := clusterSettings{Activated: true, QuorumUserMgmt: 5, QuorumQuorumMgmt: 6}
		if err := c.unmarshal(b); err == nil {
			t.Errorf("%s: unmarshal(%x) succeeded", name, b)
		}
		if c != (clusterSettings{Activated: true, QuorumUserMgmt: 5, QuorumQuorumMgmt: 6}) {
			t.Errorf("%s: a failed unmarshal changed the settings to %+v", name, c)
		}
	}
}
