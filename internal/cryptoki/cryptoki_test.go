package cryptoki

import (
	"bytes"
	"context"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

const (
	userPIN = "alice:password1"
	soPIN   = "admin:adminpw1"
)

func newModule(t *testing.T, handles *Handles) (*Module, *fakeCluster) {
	t.Helper()
	fc := newFakeCluster()
	if handles == nil {
		handles = &Handles{}
	}
	m, err := New(t.Context(), Config{
		Handles: handles,
		Slots: []SlotConfig{{ClusterID: "cluster-abcdefghijklmnopqrstu", Dial: func(context.Context) (Cluster, error) {
			return fc, nil
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m, fc
}

func must(t *testing.T, rv ck.RV) {
	t.Helper()
	if rv != ck.CKR_OK {
		t.Fatalf("rv = %v, want CKR_OK", rv)
	}
}

func wantRV(t *testing.T, got, want ck.RV) {
	t.Helper()
	if got != want {
		t.Fatalf("rv = %v, want %v", got, want)
	}
}

func open(t *testing.T, m *Module, rw bool) SessionHandle {
	t.Helper()
	flags := ck.CKF_SERIAL_SESSION
	if rw {
		flags |= ck.CKF_RW_SESSION
	}
	h, rv := m.OpenSession(0, flags)
	must(t, rv)
	return h
}

func loggedIn(t *testing.T) (*Module, *fakeCluster, SessionHandle) {
	t.Helper()
	m, fc := newModule(t, nil)
	h := open(t, m, true)
	must(t, m.Login(t.Context(), h, ck.CKU_USER, []byte(userPIN)))
	return m, fc, h
}

func TestNewValidates(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no slots":   {Handles: &Handles{}},
		"no handles": {Slots: []SlotConfig{{Dial: func(context.Context) (Cluster, error) { return nil, nil }}}},
		"no dial":    {Handles: &Handles{}, Slots: []SlotConfig{{}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(t.Context(), cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestSlotAndTokenInfo(t *testing.T) {
	m, _ := newModule(t, nil)
	if got := m.Slots(); len(got) != 1 || got[0] != 0 {
		t.Fatalf("Slots = %v", got)
	}
	if _, rv := m.SlotInfo(1); rv != ck.CKR_SLOT_ID_INVALID {
		t.Fatalf("SlotInfo(1) rv %v", rv)
	}
	ti, rv := m.TokenInfo(0)
	must(t, rv)
	if ti.Label != "cluster-abcdefghijklmnopqrstu" || ti.Serial != "fghijklmnopqrstu" || ti.Flags&ck.CKF_LOGIN_REQUIRED == 0 ||
		ti.Flags&ck.CKF_TOKEN_INITIALIZED == 0 || ti.FreePublicMemory != Unavailable {
		t.Fatalf("TokenInfo = %+v", ti)
	}
	open(t, m, true)
	open(t, m, false)
	ti, _ = m.TokenInfo(0)
	if ti.Sessions != 2 || ti.RWSessions != 1 {
		t.Fatalf("sessions %d rw %d, want 2 1", ti.Sessions, ti.RWSessions)
	}
}

func TestMechanismInfo(t *testing.T) {
	m, _ := newModule(t, nil)
	tests := []struct {
		mech     ck.MechanismType
		rv       ck.RV
		min, max uint
	}{
		{ck.CKM_AES_GCM, ck.CKR_OK, 16, 32}, // AES sizes are in bytes
		{ck.CKM_CLOUDHSM_AES_GCM, ck.CKR_OK, 16, 32},
		{ck.CKM_ECDSA_SHA256, ck.CKR_OK, 256, 521},
		{ck.CKM_DES3_CBC, ck.CKR_MECHANISM_INVALID, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.mech.String(), func(t *testing.T) {
			mi, rv := m.MechanismInfo(t.Context(), 0, tc.mech)
			wantRV(t, rv, tc.rv)
			if mi.MinKeySize != tc.min || mi.MaxKeySize != tc.max {
				t.Fatalf("sizes %d..%d, want %d..%d", mi.MinKeySize, mi.MaxKeySize, tc.min, tc.max)
			}
		})
	}
	list, rv := m.MechanismList(t.Context(), 0)
	must(t, rv)
	if len(list) != 5 {
		t.Fatalf("MechanismList = %v", list)
	}
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name string
		ut   ck.UserType
		pin  string
		rv   ck.RV
	}{
		{"user", ck.CKU_USER, userPIN, ck.CKR_OK},
		{"so", ck.CKU_SO, soPIN, ck.CKR_OK},
		{"no colon", ck.CKU_USER, "alicepassword1", ck.CKR_PIN_INCORRECT},
		{"empty password", ck.CKU_USER, "alice:", ck.CKR_PIN_INCORRECT},
		{"wrong password", ck.CKU_USER, "alice:nope", ck.CKR_PIN_INCORRECT},
		{"wrong role", ck.CKU_SO, userPIN, ck.CKR_PIN_INCORRECT},
		{"bad user type", 7, userPIN, ck.CKR_USER_TYPE_INVALID},
		{"context specific", ck.CKU_CONTEXT_SPECIFIC, userPIN, ck.CKR_USER_NOT_LOGGED_IN},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newModule(t, nil)
			h := open(t, m, true)
			wantRV(t, m.Login(t.Context(), h, tc.ut, []byte(tc.pin)), tc.rv)
		})
	}
}

func TestLoginState(t *testing.T) {
	m, fc := newModule(t, nil)
	ctx := t.Context()
	h1 := open(t, m, true)
	h2 := open(t, m, false)
	wantRV(t, m.Login(ctx, h1, ck.CKU_SO, []byte(soPIN)), ck.CKR_SESSION_READ_ONLY_EXISTS)
	must(t, m.Login(ctx, h1, ck.CKU_USER, []byte(userPIN)))
	wantRV(t, m.Login(ctx, h2, ck.CKU_USER, []byte(userPIN)), ck.CKR_USER_ALREADY_LOGGED_IN)
	wantRV(t, m.Login(ctx, h2, ck.CKU_SO, []byte(soPIN)), ck.CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
	for h, want := range map[SessionHandle]ck.State{h1: ck.CKS_RW_USER_FUNCTIONS, h2: ck.CKS_RO_USER_FUNCTIONS} {
		si, rv := m.SessionInfo(h)
		must(t, rv)
		if si.State != want {
			t.Fatalf("session %d state %v, want %v", h, si.State, want)
		}
	}
	if fc.open != 1 {
		t.Fatalf("%d client sessions, want 1 shared", fc.open)
	}
	must(t, m.Logout(ctx, h2))
	wantRV(t, m.Logout(ctx, h1), ck.CKR_USER_NOT_LOGGED_IN)
	must(t, m.Login(ctx, h1, ck.CKU_USER, []byte(userPIN)))
	must(t, m.CloseSession(ctx, h1))
	must(t, m.CloseSession(ctx, h2))
	if fc.open != 0 {
		t.Fatalf("%d client sessions after the last session closed, want 0", fc.open)
	}
	wantRV(t, m.CloseSession(ctx, h1), ck.CKR_SESSION_HANDLE_INVALID)
}

func TestPINLocked(t *testing.T) {
	m, _ := newModule(t, nil)
	h := open(t, m, true)
	for range 3 {
		wantRV(t, m.Login(t.Context(), h, ck.CKU_USER, []byte("alice:wrong")), ck.CKR_PIN_INCORRECT)
	}
	wantRV(t, m.Login(t.Context(), h, ck.CKU_USER, []byte(userPIN)), ck.CKR_PIN_LOCKED)
}

func TestNotLoggedIn(t *testing.T) {
	m, _ := newModule(t, nil)
	h := open(t, m, true)
	ctx := t.Context()
	_, rv := m.GenerateKey(ctx, h, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, nil)
	wantRV(t, rv, ck.CKR_USER_NOT_LOGGED_IN)
	wantRV(t, m.Init(ctx, h, OpDigest, client.Mechanism{Type: ck.CKM_SHA256}, 0), ck.CKR_USER_NOT_LOGGED_IN)
	wantRV(t, m.GenerateRandom(ctx, h, make([]byte, 8)), ck.CKR_USER_NOT_LOGGED_IN)
	must(t, m.FindObjectsInit(ctx, h, nil))
	n, rv := m.FindObjects(h, make([]ObjectHandle, 4))
	must(t, rv)
	if n != 0 {
		t.Fatalf("found %d objects without a login", n)
	}
}

func TestHandlesNeverReused(t *testing.T) {
	handles := &Handles{}
	seen := map[uint]bool{}
	note := func(h uint) {
		if seen[h] {
			t.Fatalf("handle %d given out twice", h)
		}
		seen[h] = true
	}
	for range 2 { // two Modules in a row, as after C_Finalize and C_Initialize
		m, _ := newModule(t, handles)
		h := open(t, m, true)
		note(uint(h))
		must(t, m.Login(t.Context(), h, ck.CKU_USER, []byte(userPIN)))
		for range 3 {
			oh, rv := m.GenerateKey(t.Context(), h, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, nil)
			must(t, rv)
			note(uint(oh))
			must(t, m.DestroyObject(t.Context(), h, oh))
			wantRV(t, m.DestroyObject(t.Context(), h, oh), ck.CKR_OBJECT_HANDLE_INVALID)
		}
		must(t, m.CloseSession(t.Context(), h))
		m.Close(t.Context())
	}
}

func TestReadOnlySession(t *testing.T) {
	m, _, rw := loggedIn(t)
	ro := open(t, m, false)
	ctx := t.Context()
	token := []client.Attribute{client.Bool(ck.CKA_TOKEN, true)}
	_, rv := m.GenerateKey(ctx, ro, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, token)
	wantRV(t, rv, ck.CKR_SESSION_READ_ONLY)
	_, rv = m.GenerateKey(ctx, ro, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, nil)
	must(t, rv) // session objects are fine in a read-only session
	oh, rv := m.GenerateKey(ctx, rw, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, token)
	must(t, rv)
	wantRV(t, m.DestroyObject(ctx, ro, oh), ck.CKR_SESSION_READ_ONLY)
	wantRV(t, m.SetAttributeValue(ctx, ro, oh, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte("x")}}), ck.CKR_SESSION_READ_ONLY)
	must(t, m.SetAttributeValue(ctx, rw, oh, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte("x")}}))
}

func TestSessionObjectsGoWithTheirSession(t *testing.T) {
	m, fc, h := loggedIn(t)
	ctx := t.Context()
	other := open(t, m, true)
	sess, rv := m.GenerateKey(ctx, other, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, nil)
	must(t, rv)
	tok, rv := m.GenerateKey(ctx, other, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, []client.Attribute{client.Bool(ck.CKA_TOKEN, true)})
	must(t, rv)
	must(t, m.CloseSession(ctx, other))
	if fc.count("destroy") != 1 {
		t.Fatalf("%d objects destroyed, want the one session object", fc.count("destroy"))
	}
	req := []AttributeRequest{{Type: ck.CKA_TOKEN, Query: true}}
	wantRV(t, m.GetAttributeValue(ctx, h, sess, req), ck.CKR_OBJECT_HANDLE_INVALID)
	must(t, m.GetAttributeValue(ctx, h, tok, req))
}

func TestGetAttributeValue(t *testing.T) {
	m, _, h := loggedIn(t)
	ctx := t.Context()
	oh, rv := m.CreateObject(ctx, h, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte("label")}})
	must(t, rv)
	tests := []struct {
		name    string
		req     AttributeRequest
		rv      ck.RV
		wantLen uint
		want    string
	}{
		{"query", AttributeRequest{Type: ck.CKA_LABEL, Query: true}, ck.CKR_OK, 5, ""},
		{"fits", AttributeRequest{Type: ck.CKA_LABEL, Buf: make([]byte, 10)}, ck.CKR_OK, 5, "label"},
		{"too small", AttributeRequest{Type: ck.CKA_LABEL, Buf: make([]byte, 4)}, ck.CKR_BUFFER_TOO_SMALL, Unavailable, ""},
		{"sensitive", AttributeRequest{Type: ck.CKA_VALUE, Query: true}, ck.CKR_ATTRIBUTE_SENSITIVE, Unavailable, ""},
		{"invalid type", AttributeRequest{Type: ck.CKA_MODULUS, Query: true}, ck.CKR_ATTRIBUTE_TYPE_INVALID, Unavailable, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs := []AttributeRequest{tc.req, {Type: ck.CKA_LABEL, Query: true}}
			wantRV(t, m.GetAttributeValue(ctx, h, oh, reqs), tc.rv)
			if reqs[0].Len != tc.wantLen {
				t.Fatalf("Len = %d, want %d", reqs[0].Len, tc.wantLen)
			}
			if tc.want != "" && string(reqs[0].Buf[:reqs[0].Len]) != tc.want {
				t.Fatalf("value %q", reqs[0].Buf)
			}
			if reqs[1].Len != 5 {
				t.Fatalf("the other attribute was not answered: Len %d", reqs[1].Len)
			}
		})
	}
	wantRV(t, m.GetAttributeValue(ctx, h, 999999, []AttributeRequest{{Type: ck.CKA_LABEL, Query: true}}), ck.CKR_OBJECT_HANDLE_INVALID)
}

func TestFind(t *testing.T) {
	m, _, h := loggedIn(t)
	ctx := t.Context()
	lbl := []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte("find-me")}}
	var made []ObjectHandle
	for range 5 {
		oh, rv := m.CreateObject(ctx, h, lbl)
		must(t, rv)
		made = append(made, oh)
	}
	_, rv := m.FindObjects(h, make([]ObjectHandle, 1))
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)
	must(t, m.FindObjectsInit(ctx, h, lbl))
	wantRV(t, m.FindObjectsInit(ctx, h, lbl), ck.CKR_OPERATION_ACTIVE)
	var got []ObjectHandle
	buf := make([]ObjectHandle, 2)
	for {
		n, rv := m.FindObjects(h, buf)
		must(t, rv)
		if n == 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	must(t, m.FindObjectsFinal(h))
	wantRV(t, m.FindObjectsFinal(h), ck.CKR_OPERATION_NOT_INITIALIZED)
	if len(got) != len(made) {
		t.Fatalf("found %v, want %v", got, made)
	}
	for i := range got {
		if got[i] != made[i] {
			t.Fatalf("found %v, want the creation handles %v", got, made)
		}
	}
}

func TestSignTwoCall(t *testing.T) {
	m, fc, h := loggedIn(t)
	ctx := t.Context()
	key, rv := m.CreateObject(ctx, h, nil)
	must(t, rv)
	data := []byte("message")
	_, rv = m.Single(ctx, h, OpSign, data, nil, true)
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)
	wantRV(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_AES_GCM}, key), ck.CKR_MECHANISM_INVALID)
	wantRV(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, 424242), ck.CKR_KEY_HANDLE_INVALID)
	must(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	wantRV(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key), ck.CKR_OPERATION_ACTIVE)
	n, rv := m.Single(ctx, h, OpSign, data, nil, true)
	must(t, rv)
	if n != 32 {
		t.Fatalf("length query answered %d, want 32", n)
	}
	n, rv = m.Single(ctx, h, OpSign, data, make([]byte, 8), false)
	wantRV(t, rv, ck.CKR_BUFFER_TOO_SMALL)
	if n != 32 {
		t.Fatalf("too-small answered %d, want 32", n)
	}
	sig := make([]byte, 64)
	n, rv = m.Single(ctx, h, OpSign, data, sig, false)
	must(t, rv)
	if fc.count("sign") != 1 {
		t.Fatalf("the HSM signed %d times, want once", fc.count("sign"))
	}
	_, rv = m.Single(ctx, h, OpSign, data, sig, false)
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)

	must(t, m.Init(ctx, h, OpVerify, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	must(t, m.Verify(ctx, h, data, sig[:n]))
	must(t, m.Init(ctx, h, OpVerify, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	wantRV(t, m.Verify(ctx, h, []byte("other"), sig[:n]), ck.CKR_SIGNATURE_INVALID)
	wantRV(t, m.Verify(ctx, h, data, sig[:n]), ck.CKR_OPERATION_NOT_INITIALIZED)

	// Multi-part sign, then verify, over the same parts.
	must(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	for _, part := range []string{"mes", "sage"} {
		_, rv := m.Update(ctx, h, OpSign, []byte(part), nil, false)
		must(t, rv)
	}
	_, rv = m.Single(ctx, h, OpSign, data, sig, false)
	wantRV(t, rv, ck.CKR_OPERATION_ACTIVE)
	n2, rv := m.Final(ctx, h, OpSign, sig, false)
	must(t, rv)
	if !bytes.Equal(sig[:n2], fakeSig(100+1, data)) {
		t.Fatalf("multi-part signature differs from the single-part one")
	}
	must(t, m.Init(ctx, h, OpVerify, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	_, rv = m.Update(ctx, h, OpVerify, data, nil, false)
	must(t, rv)
	must(t, m.VerifyFinal(ctx, h, sig[:n2]))
}

func TestEncryptMultiPart(t *testing.T) {
	m, _, h := loggedIn(t)
	ctx := t.Context()
	key, rv := m.CreateObject(ctx, h, nil)
	must(t, rv)
	gcm := client.Mechanism{Type: ck.CKM_AES_GCM, IV: make([]byte, 12)}
	must(t, m.Init(ctx, h, OpEncrypt, gcm, key))
	// Update with a length query, a too-small buffer, then the buffer.
	n, rv := m.Update(ctx, h, OpEncrypt, []byte("abcd"), nil, true)
	must(t, rv)
	if n != 4 {
		t.Fatalf("update length %d", n)
	}
	_, rv = m.Update(ctx, h, OpEncrypt, []byte("abcd"), make([]byte, 2), false)
	wantRV(t, rv, ck.CKR_BUFFER_TOO_SMALL)
	out := make([]byte, 4)
	_, rv = m.Update(ctx, h, OpEncrypt, []byte("abcd"), out, false)
	must(t, rv)
	if !bytes.Equal(out, xor([]byte("abcd"))) {
		t.Fatalf("update output %x", out)
	}
	n, rv = m.Final(ctx, h, OpEncrypt, nil, true)
	must(t, rv)
	n, rv = m.Final(ctx, h, OpEncrypt, make([]byte, n), false)
	must(t, rv)
	_, rv = m.Final(ctx, h, OpEncrypt, out, false)
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)

	// Logging out ends operations.
	must(t, m.Init(ctx, h, OpDecrypt, gcm, key))
	must(t, m.Logout(ctx, h))
	must(t, m.Login(ctx, h, ck.CKU_USER, []byte(userPIN)))
	_, rv = m.Single(ctx, h, OpDecrypt, []byte("x"), out, false)
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)
}

// The mechanism's parameters given to Init are the caller's memory, which
// it may free or reuse once Init returns: the operation uses a copy.
func TestInitCopiesMechanism(t *testing.T) {
	m, fc, h := loggedIn(t)
	ctx := t.Context()
	key, rv := m.CreateObject(ctx, h, nil)
	must(t, rv)
	iv, aad := bytes.Repeat([]byte{1}, 12), []byte("header")
	gcm := client.Mechanism{Type: ck.CKM_AES_GCM, IV: iv, AAD: aad, TagBits: 128}
	must(t, m.Init(ctx, h, OpEncrypt, gcm, key))
	clear(iv)
	copy(aad, "XXXXXX")
	_, rv = m.Single(ctx, h, OpEncrypt, []byte("data"), make([]byte, 4), false)
	must(t, rv)
	fc.mu.Lock()
	got := fc.lastMech
	fc.mu.Unlock()
	if !bytes.Equal(got.IV, bytes.Repeat([]byte{1}, 12)) || string(got.AAD) != "header" || got.TagBits != 128 {
		t.Fatalf("Encrypt got IV %x AAD %q tag %d: the caller's memory, changed after Init", got.IV, got.AAD, got.TagBits)
	}
}

func TestDigest(t *testing.T) {
	m, _, h := loggedIn(t)
	ctx := t.Context()
	want := []byte{0xba, 0x78, 0x16, 0xbf} // SHA-256("abc")
	must(t, m.Init(ctx, h, OpDigest, client.Mechanism{Type: ck.CKM_SHA256}, 0))
	out := make([]byte, 32)
	_, rv := m.Single(ctx, h, OpDigest, []byte("abc"), out, false)
	must(t, rv)
	if !bytes.Equal(out[:4], want) {
		t.Fatalf("digest %x", out)
	}
	must(t, m.Init(ctx, h, OpDigest, client.Mechanism{Type: ck.CKM_SHA256}, 0))
	for _, p := range []string{"a", "bc"} {
		_, rv := m.Update(ctx, h, OpDigest, []byte(p), nil, false)
		must(t, rv)
	}
	_, rv = m.Final(ctx, h, OpDigest, out, false)
	must(t, rv)
	if !bytes.Equal(out[:4], want) {
		t.Fatalf("multi-part digest %x", out)
	}
}

func TestWrapTwoCall(t *testing.T) {
	m, fc, h := loggedIn(t)
	ctx := t.Context()
	kek, _ := m.CreateObject(ctx, h, nil)
	key, _ := m.CreateObject(ctx, h, nil)
	mech := client.Mechanism{Type: ck.CKM_AES_KEY_WRAP}
	n, rv := m.WrapKey(ctx, h, mech, kek, key, nil, true)
	must(t, rv)
	out := make([]byte, n)
	_, rv = m.WrapKey(ctx, h, mech, kek, key, out, false)
	must(t, rv)
	if fc.count("wrap") != 1 {
		t.Fatalf("wrapped %d times, want once", fc.count("wrap"))
	}
	_, rv = m.WrapKey(ctx, h, mech, 77777, key, out, false)
	wantRV(t, rv, ck.CKR_WRAPPING_KEY_HANDLE_INVALID)
	// The pending wrap is for its parameters only: a fetch with another
	// OAEP label or RSA-AES key size wraps anew.
	for _, other := range []client.Mechanism{{Type: ck.CKM_RSA_PKCS_OAEP, Label: []byte("b")}, {Type: ck.CKM_RSA_AES_KEY_WRAP, AESKeyBits: 128}} {
		first := other
		first.Label, first.AESKeyBits = []byte("a"), 256
		before := fc.count("wrap")
		_, rv = m.WrapKey(ctx, h, first, kek, key, nil, true)
		must(t, rv)
		_, rv = m.WrapKey(ctx, h, other, kek, key, out, false)
		must(t, rv)
		if fc.count("wrap") != before+2 {
			t.Fatalf("%v: a fetch with other parameters got the pending wrap", other.Type)
		}
	}
	uk, rv := m.UnwrapKey(ctx, h, mech, kek, out, nil)
	must(t, rv)
	dk, rv := m.DeriveKey(ctx, h, client.Mechanism{Type: ck.CKM_ECDH1_DERIVE}, uk, nil)
	must(t, rv)
	if dk == uk || uk == key {
		t.Fatal("handles collide")
	}
}

func TestRandomAndPIN(t *testing.T) {
	m, fc, h := loggedIn(t)
	ctx := t.Context()
	out := make([]byte, maxRandom+10)
	must(t, m.GenerateRandom(ctx, h, out))
	if fc.count("random") != 2 || out[len(out)-1] != 7 {
		t.Fatalf("random: %d requests, last byte %d", fc.count("random"), out[len(out)-1])
	}
	wantRV(t, m.SeedRandom(h), ck.CKR_RANDOM_SEED_NOT_SUPPORTED)
	wantRV(t, m.SetPIN(ctx, h, []byte("alice:wrong"), []byte("newpassword")), ck.CKR_PIN_INCORRECT)
	must(t, m.SetPIN(ctx, h, []byte(userPIN), []byte("newpassword")))
	if fc.users["alice"] != "newpassword" {
		t.Fatal("password not changed")
	}
}

func TestDialRetried(t *testing.T) {
	fc := newFakeCluster()
	fail := true
	m, err := New(t.Context(), Config{Handles: &Handles{}, Slots: []SlotConfig{{ClusterID: "c", Dial: func(context.Context) (Cluster, error) {
		if fail {
			return nil, errDialFailed
		}
		return fc, nil
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	h := open(t, m, true)
	wantRV(t, m.Login(t.Context(), h, ck.CKU_USER, []byte(userPIN)), ck.CKR_DEVICE_ERROR)
	fail = false
	must(t, m.Login(t.Context(), h, ck.CKU_USER, []byte(userPIN)))
}
