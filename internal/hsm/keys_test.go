package hsm

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// wantErr fails unless err is the refusal kind with its PKCS#11 code.
func wantErr(t testing.TB, err error, kind *Kind) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %q", err, kind.msg)
	}
	if Code(err) != kind.RV {
		t.Fatalf("Code(err) = %v, want %v", Code(err), kind.RV)
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func aesTemplate(label string, n uint, extra ...Attribute) Template {
	return append(Template{Bool(ck.CKA_TOKEN, true), String(ck.CKA_LABEL, label), Ulong(ck.CKA_VALUE_LEN, n)}, extra...)
}

func genAES(t testing.TB, td *testDevice, s SessionID, label string, extra ...Attribute) ObjectID {
	t.Helper()
	id, err := td.GenerateKey(t.Context(), s, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate(label, 32, extra...))
	if err != nil {
		t.Fatalf("generate AES: %v", err)
	}
	return id
}

func attr(t testing.TB, td *testDevice, s SessionID, id ObjectID, a ck.AttributeType) []byte {
	t.Helper()
	vals, err := td.GetAttributes(s, id, []ck.AttributeType{a})
	if err != nil {
		t.Fatalf("get %v: %v", a, err)
	}
	return vals[0].Value
}

func TestGeneratedKeyAttributes(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	id := genAES(t, td, alice, "k1")

	for _, c := range []struct {
		a    ck.AttributeType
		want []byte
	}{
		{ck.CKA_CLASS, Ulong(0, uint(ck.CKO_SECRET_KEY)).Value},
		{ck.CKA_KEY_TYPE, Ulong(0, uint(ck.CKK_AES)).Value},
		{ck.CKA_VALUE_LEN, Ulong(0, 32).Value},
		{ck.CKA_LABEL, []byte("k1")},
		{ck.CKA_TOKEN, []byte{1}},
		{ck.CKA_LOCAL, []byte{1}},
		{ck.CKA_SENSITIVE, []byte{1}},
		{ck.CKA_ALWAYS_SENSITIVE, []byte{1}},
		{ck.CKA_EXTRACTABLE, []byte{1}},
		{ck.CKA_NEVER_EXTRACTABLE, []byte{0}},
		{ck.CKA_KEY_GEN_MECHANISM, Ulong(0, uint(ck.CKM_AES_KEY_GEN)).Value},
	} {
		if got := attr(t, td, alice, id, c.a); !bytes.Equal(got, c.want) {
			t.Errorf("%v = %x, want %x", c.a, got, c.want)
		}
	}
	vals, err := td.GetAttributes(alice, id, []ck.AttributeType{ck.CKA_LABEL, ck.CKA_VALUE, ck.CKA_MODULUS})
	wantErr(t, err, ErrAttributeSensitive) // sensitive wins over invalid
	if !bytes.Equal(vals[0].Value, []byte("k1")) || vals[1].Err != ErrAttributeSensitive || vals[2].Err != ErrAttributeTypeInvalid {
		t.Fatalf("per-attribute answers: %+v", vals)
	}
	if vals[1].Value != nil {
		t.Fatal("sensitive value leaked")
	}
}

func TestTemplateRefusals(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	gen := Mechanism{Type: ck.CKM_AES_KEY_GEN}
	for _, c := range []struct {
		name string
		tmpl Template
		want *Kind
	}{
		{"missing length", Template{Bool(ck.CKA_TOKEN, true)}, ErrTemplateIncomplete},
		{"bad AES length", Template{Ulong(ck.CKA_VALUE_LEN, 20)}, ErrKeySizeRange},
		{"value given", Template{Ulong(ck.CKA_VALUE_LEN, 16), Bytes(ck.CKA_VALUE, make([]byte, 16))}, ErrTemplateInconsistent},
		{"computed attribute", Template{Ulong(ck.CKA_VALUE_LEN, 16), Bool(ck.CKA_LOCAL, false)}, ErrAttributeReadOnly},
		{"wrong class", Template{Ulong(ck.CKA_VALUE_LEN, 16), Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY))}, ErrTemplateInconsistent},
		{"attribute of another class", Template{Ulong(ck.CKA_VALUE_LEN, 16), Bytes(ck.CKA_MODULUS, []byte{1})}, ErrAttributeTypeInvalid},
		{"malformed bool", Template{Ulong(ck.CKA_VALUE_LEN, 16), {ck.CKA_TOKEN, []byte{1, 0}}}, ErrAttributeValueInvalid},
		{"pair mechanism", nil, ErrMechanismInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := gen
			if c.tmpl == nil {
				m = Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN}
			}
			_, err := td.GenerateKey(t.Context(), alice, m, c.tmpl)
			wantErr(t, err, c.want)
		})
	}
}

func TestSetAttributeRules(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	for _, c := range []struct {
		name  string
		start []Attribute
		set   Attribute
		want  *Kind // nil: allowed
	}{
		{"label", nil, String(ck.CKA_LABEL, "new"), nil},
		{"sensitive false to true", []Attribute{Bool(ck.CKA_SENSITIVE, false)}, Bool(ck.CKA_SENSITIVE, true), nil},
		{"sensitive true to false", nil, Bool(ck.CKA_SENSITIVE, false), ErrAttributeReadOnly},
		{"extractable true to false", nil, Bool(ck.CKA_EXTRACTABLE, false), nil},
		{"extractable false to true", []Attribute{Bool(ck.CKA_EXTRACTABLE, false)}, Bool(ck.CKA_EXTRACTABLE, true), ErrAttributeReadOnly},
		{"wrap with trusted one way", []Attribute{Bool(ck.CKA_WRAP_WITH_TRUSTED, true)}, Bool(ck.CKA_WRAP_WITH_TRUSTED, false), ErrAttributeReadOnly},
		{"class", nil, Ulong(ck.CKA_CLASS, uint(ck.CKO_DATA)), ErrAttributeReadOnly},
		{"value length", nil, Ulong(ck.CKA_VALUE_LEN, 16), ErrAttributeReadOnly},
		{"value", nil, Bytes(ck.CKA_VALUE, make([]byte, 32)), ErrAttributeReadOnly},
		{"trusted by a crypto user", nil, Bool(ck.CKA_TRUSTED, true), ErrAttributeReadOnly},
		{"not modifiable", []Attribute{Bool(ck.CKA_MODIFIABLE, false)}, String(ck.CKA_LABEL, "x"), ErrActionProhibited},
		{"invalid type", nil, Bytes(ck.CKA_MODULUS, []byte{1}), ErrAttributeTypeInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := genAES(t, td, alice, c.name, c.start...)
			err := td.SetAttributes(ctx, alice, id, Template{c.set})
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := attr(t, td, alice, id, c.set.Type); !bytes.Equal(got, c.set.Value) {
					t.Fatalf("%v = %x after set", c.set.Type, got)
				}
				return
			}
			wantErr(t, err, c.want)
		})
	}
}

func TestSetAttributesPersist(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	id := genAES(t, td, alice, "before")
	if err := td.SetAttributes(t.Context(), alice, id, Template{String(ck.CKA_LABEL, "after"), Bool(ck.CKA_EXTRACTABLE, false)}); err != nil {
		t.Fatal(err)
	}
	td2 := td.reopen(t)
	s := td2.OpenSession()
	if err := td2.Login(t.Context(), s, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatal(err)
	}
	if got := attr(t, td2, s, id, ck.CKA_LABEL); string(got) != "after" {
		t.Fatalf("label after reopen = %q", got)
	}
	if got := attr(t, td2, s, id, ck.CKA_EXTRACTABLE); got[0] != 0 {
		t.Fatal("extractable came back")
	}
}

func TestDestroy(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	id := genAES(t, td, alice, "gone")
	if err := td.DestroyObject(ctx, alice, id); err != nil {
		t.Fatal(err)
	}
	_, err := td.Sign(alice, id, Mechanism{Type: ck.CKM_AES_CMAC}, []byte("x"))
	wantErr(t, err, ErrKeyHandleInvalid)
	if len(td.store.recs[RecordObject]) != 0 {
		t.Fatal("record left in store")
	}
	keep := genAES(t, td, alice, "keep", Bool(ck.CKA_DESTROYABLE, false))
	wantErr(t, td.DestroyObject(ctx, alice, keep), ErrActionProhibited)
}

func TestNonExtractable(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	kek := genAES(t, td, alice, "kek")
	locked := genAES(t, td, alice, "locked", Bool(ck.CKA_EXTRACTABLE, false))
	if got := attr(t, td, alice, locked, ck.CKA_NEVER_EXTRACTABLE); got[0] != 1 {
		t.Fatal("CKA_NEVER_EXTRACTABLE not derived")
	}
	_, err := td.ExportKey(ctx, alice, locked)
	wantErr(t, err, ErrKeyNotExtractable)
	_, err = td.WrapKey(alice, kek, Mechanism{Type: ck.CKM_AES_KEY_WRAP}, locked)
	wantErr(t, err, ErrKeyNotExtractable)

	open := genAES(t, td, alice, "open")
	raw := must[[]byte](t)(td.ExportKey(ctx, alice, open))
	if len(raw) != 32 {
		t.Fatalf("exported %d bytes", len(raw))
	}
	// Export is audited, durably.
	if !slices.Contains(td.audit.ops(), "key.export:ok") {
		t.Fatalf("audit: %v", td.audit.ops())
	}
}

func TestWrapWithTrusted(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	kek := genAES(t, td, alice, "kek")
	guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
	_, err := td.WrapKey(alice, kek, Mechanism{Type: ck.CKM_AES_KEY_WRAP}, guarded)
	wantErr(t, err, ErrKeyNotWrappable)
}

func TestSharing(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	carol := withCU(t, td, admin, "carol")
	ctx := t.Context()
	key := genAES(t, td, alice, "shared")
	kek := genAES(t, td, alice, "kek")
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}

	_, err := td.Sign(bob, key, cmac, []byte("m"))
	wantErr(t, err, ErrKeyHandleInvalid) // not yet shared: invisible
	if err := td.ShareKey(ctx, alice, key, "bob"); err != nil {
		t.Fatal(err)
	}
	mac := must[[]byte](t)(td.Sign(bob, key, cmac, []byte("m")))
	if err := td.Verify(alice, key, cmac, []byte("m"), mac); err != nil {
		t.Fatal(err)
	}
	wantErr(t, td.DestroyObject(ctx, bob, key), ErrNotOwner)
	_, err = td.ExportKey(ctx, bob, key)
	wantErr(t, err, ErrNotOwner)
	wantErr(t, td.ShareKey(ctx, bob, key, "carol"), ErrNotOwner)
	wantErr(t, td.SetAttributes(ctx, bob, key, Template{String(ck.CKA_LABEL, "mine")}), ErrNotOwner)
	if err := td.ShareKey(ctx, alice, kek, "bob"); err != nil {
		t.Fatal(err)
	}
	_, err = td.WrapKey(bob, kek, Mechanism{Type: ck.CKM_AES_KEY_WRAP}, key)
	wantErr(t, err, ErrNotOwner)
	_, err = td.Sign(carol, key, cmac, []byte("m"))
	wantErr(t, err, ErrKeyHandleInvalid)
	wantErr(t, td.ShareKey(ctx, alice, key, "nobody"), ErrUserNotFound)
	wantErr(t, td.ShareKey(ctx, alice, key, "admin"), ErrArgumentsBad)

	if err := td.UnshareKey(ctx, alice, key, "bob"); err != nil {
		t.Fatal(err)
	}
	_, err = td.Sign(bob, key, cmac, []byte("m"))
	wantErr(t, err, ErrKeyHandleInvalid)
	wantErr(t, td.UnshareKey(ctx, alice, key, "bob"), ErrNotShared)
}

func TestRolesAndLogin(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	key := genAES(t, td, alice, "k")
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}

	_, err := td.Sign(admin, key, cmac, []byte("m"))
	wantErr(t, err, ErrAdminCannotUseKeys)
	_, err = td.GenerateKey(t.Context(), admin, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate("a", 16))
	wantErr(t, err, ErrAdminCannotUseKeys)
	// Admins see keys (to manage users who own them) but cannot use them.
	if ids := must[[]ObjectID](t)(td.FindObjects(admin, nil)); !slices.Contains(ids, key) {
		t.Fatalf("admin find: %v", ids)
	}
	anon := td.OpenSession()
	_, err = td.Sign(anon, key, cmac, []byte("m"))
	wantErr(t, err, ErrNotLoggedIn)
	if ids := must[[]ObjectID](t)(td.FindObjects(anon, nil)); len(ids) != 0 {
		t.Fatalf("anonymous session sees %v", ids)
	}
	_, err = td.Sign(SessionID(999999), key, cmac, []byte("m"))
	wantErr(t, err, ErrSessionHandleInvalid)
}

func TestSessionObjects(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	other := td.OpenSession()
	if err := td.Login(t.Context(), other, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatal(err)
	}
	id, err := td.GenerateKey(t.Context(), alice, Mechanism{Type: ck.CKM_AES_KEY_GEN}, Template{Ulong(ck.CKA_VALUE_LEN, 16)})
	if err != nil {
		t.Fatal(err)
	}
	if len(td.store.recs[RecordObject]) != 0 {
		t.Fatal("session object was persisted")
	}
	if ids := must[[]ObjectID](t)(td.FindObjects(other, nil)); slices.Contains(ids, id) {
		t.Fatal("session object visible in another session")
	}
	if err := td.CloseSession(alice); err != nil {
		t.Fatal(err)
	}
	td.mu.RLock()
	_, still := td.objects[id]
	td.mu.RUnlock()
	if still {
		t.Fatal("session object outlived its session")
	}
	wantErr(t, td.CloseSession(alice), ErrSessionHandleInvalid)
}

func TestFindObjects(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	a := genAES(t, td, alice, "alpha", Bytes(ck.CKA_ID, []byte{1}))
	b := genAES(t, td, alice, "beta", Bytes(ck.CKA_ID, []byte{2}))
	pub, priv, err := td.GenerateKeyPair(t.Context(), alice, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
		Template{Bool(ck.CKA_TOKEN, true), Bytes(ck.CKA_EC_PARAMS, curveParams(p256())), String(ck.CKA_LABEL, "ec")},
		Template{Bool(ck.CKA_TOKEN, true), String(ck.CKA_LABEL, "ec")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tmpl Template
		want []ObjectID
	}{
		{"label", Template{String(ck.CKA_LABEL, "alpha")}, []ObjectID{a}},
		{"id", Template{Bytes(ck.CKA_ID, []byte{2})}, []ObjectID{b}},
		{"class", Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY))}, []ObjectID{priv}},
		{"label of pair", Template{String(ck.CKA_LABEL, "ec")}, sorted(pub, priv)},
		{"key type", Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES))}, sorted(a, b)},
		{"no match", Template{String(ck.CKA_LABEL, "none")}, nil},
		{"secret never matches", Template{Bytes(ck.CKA_VALUE, make([]byte, 32))}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := must[[]ObjectID](t)(td.FindObjects(alice, c.tmpl))
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func sorted(ids ...ObjectID) []ObjectID { slices.Sort(ids); return ids }

// A change to a session object that its session's closing overtakes does
// not bring the object back into the table (where nothing could reach or
// remove it again).
func TestChangeOvertakenByClose(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	id, err := td.GenerateKey(t.Context(), alice, Mechanism{Type: ck.CKM_AES_KEY_GEN}, Template{Ulong(ck.CKA_VALUE_LEN, 16)})
	noErr(t, err)
	s, p, err := td.whoami(alice)
	noErr(t, err)
	err = td.update(t.Context(), s, p, id, func(o *Object) error {
		noErr(t, td.CloseSession(alice)) // the session closes while the change is being made
		return setOne(o, p, String(ck.CKA_LABEL, "late"))
	})
	wantErr(t, err, ErrObjectHandleInvalid)
	td.mu.RLock()
	_, back := td.objects[id]
	td.mu.RUnlock()
	if back {
		t.Fatal("the closed session's object came back")
	}
}
