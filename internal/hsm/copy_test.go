package hsm

import (
	"bytes"
	"slices"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

var cbcPad = Mechanism{Type: ck.CKM_AES_CBC_PAD, IV: make([]byte, 16)}

// A session key copied as a token object (what Java's KeyStore.setEntry
// does) is a new token object of the caller: its own id, stored durably
// (it survives a restart), the original's material and computed
// attributes, the template's label, shared with no one, audited.
func TestCopyObjectSessionToToken(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	orig := must[ObjectID](t)(td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_AES_KEY_GEN},
		Template{Ulong(ck.CKA_VALUE_LEN, 32), String(ck.CKA_LABEL, "session"), Bytes(ck.CKA_CHECK_VALUE, []byte{1, 2, 3})}))
	if boolAttr(t, td, alice, orig, ck.CKA_TOKEN) {
		t.Fatal("the original is a token object")
	}
	cp := must[ObjectID](t)(td.CopyObject(ctx, alice, orig, Template{Bool(ck.CKA_TOKEN, true), String(ck.CKA_LABEL, "alias"), Bool(ck.CKA_PRIVATE, true)}))
	if cp == orig {
		t.Fatal("the copy has the original's id")
	}
	if !boolAttr(t, td, alice, cp, ck.CKA_TOKEN) || string(attr(t, td, alice, cp, ck.CKA_LABEL)) != "alias" {
		t.Fatal("the copy is not the token object the template asked for")
	}
	if string(attr(t, td, alice, orig, ck.CKA_LABEL)) != "session" || boolAttr(t, td, alice, orig, ck.CKA_TOKEN) {
		t.Fatal("copying changed the original")
	}
	for _, a := range []ck.AttributeType{ck.CKA_CLASS, ck.CKA_KEY_TYPE, ck.CKA_VALUE_LEN, ck.CKA_LOCAL, ck.CKA_KEY_GEN_MECHANISM,
		ck.CKA_ALWAYS_SENSITIVE, ck.CKA_NEVER_EXTRACTABLE, ck.CKA_SENSITIVE, ck.CKA_EXTRACTABLE, ck.CKA_ENCRYPT, ck.CKA_CHECK_VALUE} {
		if !bytes.Equal(attr(t, td, alice, cp, a), attr(t, td, alice, orig, a)) {
			t.Errorf("%v of the copy differs from the original's", a)
		}
	}
	info := must[ObjectInfo](t)(td.Info(alice, cp))
	if info.Owner != "alice" || len(info.SharedWith) != 0 {
		t.Fatalf("copy owned by %q, shared with %v", info.Owner, info.SharedWith)
	}
	if _, ok := td.store.recs[RecordObject][cp.String()]; !ok {
		t.Fatal("the token copy is not in the store")
	}
	// Same material: what one encrypts the other decrypts.
	ct := must[[]byte](t)(td.Encrypt(alice, orig, cbcPad, []byte("copied key")))
	if pt := must[[]byte](t)(td.Decrypt(alice, cp, cbcPad, ct)); string(pt) != "copied key" {
		t.Fatalf("the copy decrypts to %q", pt)
	}
	if !slices.Contains(td.audit.ops(), "object.copy:ok") {
		t.Fatalf("copy not audited: %v", td.audit.ops())
	}
	// The token copy outlives the session and a restart; the original does not.
	if err := td.CloseSession(alice); err != nil {
		t.Fatal(err)
	}
	re := td.reopen(t)
	again := re.OpenSession()
	if err := re.Login(ctx, again, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatal(err)
	}
	if string(attr(t, re, again, cp, ck.CKA_LABEL)) != "alias" {
		t.Fatal("the token copy did not survive a restart")
	}
	if pt := must[[]byte](t)(re.Decrypt(again, cp, cbcPad, ct)); string(pt) != "copied key" {
		t.Fatalf("after a restart the copy decrypts to %q", pt)
	}
}

// A token object copied as a session object lives in the calling session
// only, is not stored, and goes with the session.
func TestCopyObjectTokenToSession(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	orig := genAES(t, td, alice, "token")
	cp := must[ObjectID](t)(td.CopyObject(ctx, alice, orig, Template{Bool(ck.CKA_TOKEN, false)}))
	if boolAttr(t, td, alice, cp, ck.CKA_TOKEN) {
		t.Fatal("the copy is a token object")
	}
	if _, ok := td.store.recs[RecordObject][cp.String()]; ok {
		t.Fatal("a session copy was stored")
	}
	other := td.OpenSession()
	if err := td.Login(ctx, other, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatal(err)
	}
	_, err := td.Info(other, cp)
	wantErr(t, err, ErrObjectHandleInvalid)
	_, err = td.CopyObject(ctx, other, cp, nil)
	wantErr(t, err, ErrObjectHandleInvalid)
	if err := td.CloseSession(alice); err != nil {
		t.Fatal(err)
	}
	td.mu.RLock()
	_, left := td.objects[cp]
	td.mu.RUnlock()
	if left {
		t.Fatal("the session copy outlived its session")
	}
	if _, err := td.Info(other, orig); err != nil {
		t.Fatalf("the original went with the copy's session: %v", err)
	}
}

// What a copy's template may change: PKCS#11 v3.0 §5.7 and §4.4.
func TestCopyObjectTemplate(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	sensitive := genAES(t, td, alice, "sensitive", Bool(ck.CKA_EXTRACTABLE, false))
	open := genAES(t, td, alice, "open", Bool(ck.CKA_SENSITIVE, false))
	wwt := genAES(t, td, alice, "wwt", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
	frozen := genAES(t, td, alice, "frozen", Bool(ck.CKA_MODIFIABLE, false))
	for _, c := range []struct {
		name string
		src  ObjectID
		tmpl Template
		want *Kind // nil: copied
	}{
		{"label and id", open, Template{String(ck.CKA_LABEL, "x"), Bytes(ck.CKA_ID, []byte{9})}, nil},
		{"usage", open, Template{Bool(ck.CKA_ENCRYPT, false), Bool(ck.CKA_DERIVE, true)}, nil},
		{"current values", sensitive, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Bool(ck.CKA_SENSITIVE, true), Bool(ck.CKA_EXTRACTABLE, false)}, nil},
		{"sensitive false to true", open, Template{Bool(ck.CKA_SENSITIVE, true)}, nil},
		{"sensitive true to false", sensitive, Template{Bool(ck.CKA_SENSITIVE, false)}, ErrAttributeReadOnly},
		{"extractable true to false", open, Template{Bool(ck.CKA_EXTRACTABLE, false)}, nil},
		{"extractable false to true", sensitive, Template{Bool(ck.CKA_EXTRACTABLE, true)}, ErrAttributeReadOnly},
		{"wrap with trusted true to false", wwt, Template{Bool(ck.CKA_WRAP_WITH_TRUSTED, false)}, ErrAttributeReadOnly},
		{"trusted", open, Template{Bool(ck.CKA_TRUSTED, true)}, ErrAttributeReadOnly},
		{"class", open, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_DATA))}, ErrAttributeReadOnly},
		{"key type", open, Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET))}, ErrAttributeReadOnly},
		{"value", open, Template{Bytes(ck.CKA_VALUE, make([]byte, 32))}, ErrAttributeReadOnly},
		{"value len", open, Template{Ulong(ck.CKA_VALUE_LEN, 16)}, ErrAttributeReadOnly},
		{"local", open, Template{Bool(ck.CKA_LOCAL, false)}, ErrAttributeReadOnly},
		{"always sensitive", sensitive, Template{Bool(ck.CKA_ALWAYS_SENSITIVE, false)}, ErrAttributeReadOnly},
		{"never extractable", sensitive, Template{Bool(ck.CKA_NEVER_EXTRACTABLE, false)}, ErrAttributeReadOnly},
		{"check value", open, Template{Bytes(ck.CKA_CHECK_VALUE, []byte{1, 2, 3})}, ErrAttributeReadOnly},
		{"copyable false", open, Template{Bool(ck.CKA_COPYABLE, false)}, nil},
		{"modifiable false", open, Template{Bool(ck.CKA_MODIFIABLE, false)}, nil},
		{"destroyable false", open, Template{Bool(ck.CKA_DESTROYABLE, false)}, nil},
		{"private false", open, Template{Bool(ck.CKA_PRIVATE, false)}, nil},
		{"not modifiable: token", frozen, Template{Bool(ck.CKA_TOKEN, false), String(ck.CKA_LABEL, "frozen")}, nil},
		{"not modifiable: label", frozen, Template{String(ck.CKA_LABEL, "other")}, ErrAttributeReadOnly},
		{"not modifiable: usage", frozen, Template{Bool(ck.CKA_DERIVE, true)}, ErrAttributeReadOnly},
		{"not modifiable: modifiable true", frozen, Template{Bool(ck.CKA_MODIFIABLE, true)}, ErrAttributeReadOnly},
		{"type invalid", open, Template{Bytes(ck.CKA_MODULUS, []byte{1})}, ErrAttributeTypeInvalid},
		{"value invalid", open, Template{Attribute{ck.CKA_TOKEN, []byte{1, 1}}}, ErrAttributeValueInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(td.objects)
			id, err := td.CopyObject(ctx, alice, c.src, c.tmpl)
			if c.want != nil {
				wantErr(t, err, c.want)
				if len(td.objects) != before {
					t.Fatal("a refused copy left an object")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range c.tmpl {
				if got := attr(t, td, alice, id, a.Type); !bytes.Equal(got, a.Value) {
					t.Errorf("%v = %x, want %x", a.Type, got, a.Value)
				}
			}
		})
	}
	// Sensitive made true on copy: CKA_ALWAYS_SENSITIVE stays the
	// original's (false); extractable made false: CKA_NEVER_EXTRACTABLE too.
	cp := must[ObjectID](t)(td.CopyObject(ctx, alice, open, Template{Bool(ck.CKA_SENSITIVE, true), Bool(ck.CKA_EXTRACTABLE, false)}))
	if boolAttr(t, td, alice, cp, ck.CKA_ALWAYS_SENSITIVE) || boolAttr(t, td, alice, cp, ck.CKA_NEVER_EXTRACTABLE) {
		t.Fatal("a copy claims to have been always sensitive or never extractable")
	}
	if _, err := td.ExportKey(ctx, alice, cp); err == nil {
		t.Fatal("a copy made unextractable was exported")
	}
	// CKA_COPYABLE false is final: its copy is not copied.
	nocopy := must[ObjectID](t)(td.CopyObject(ctx, alice, open, Template{Bool(ck.CKA_COPYABLE, false)}))
	_, err := td.CopyObject(ctx, alice, nocopy, nil)
	wantErr(t, err, ErrActionProhibited)
	if Code(err) != ck.CKR_ACTION_PROHIBITED {
		t.Fatalf("code %v", Code(err))
	}
}

// Only the owner copies: a user a key is shared with may use it, not own a
// copy (which it could then export, share and change); a stranger does not
// see it; an admin uses no key; a session without login copies nothing.
func TestCopyObjectWho(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	carol := withCU(t, td, admin, "carol")
	ctx := t.Context()
	k := genAES(t, td, alice, "shared")
	if err := td.ShareKey(ctx, alice, k, "bob"); err != nil {
		t.Fatal(err)
	}
	_, err := td.CopyObject(ctx, bob, k, Template{Bool(ck.CKA_TOKEN, true)})
	wantErr(t, err, ErrNotOwner)
	_, err = td.CopyObject(ctx, carol, k, nil)
	wantErr(t, err, ErrObjectHandleInvalid)
	_, err = td.CopyObject(ctx, admin, k, nil)
	wantErr(t, err, ErrAdminCannotUseKeys)
	_, err = td.CopyObject(ctx, td.OpenSession(), k, nil)
	wantErr(t, err, ErrNotLoggedIn)
	_, err = td.CopyObject(ctx, alice, 12345, nil)
	wantErr(t, err, ErrObjectHandleInvalid)
	if !slices.Contains(td.audit.ops(), "object.copy:"+resultOf(&Error{Op: "object.copy", Err: ErrNotOwner})) {
		t.Fatalf("a refused copy is not audited: %v", td.audit.ops())
	}
}

// Trust stays an admin's decision about one object. A trusted object is
// not copied; and a copy made before an admin trusted the original still
// counts as the opener of a trusted key (same secret), so it neither
// decrypts what was wrapped under the original nor unwraps it without
// CKA_WRAP_WITH_TRUSTED.
func TestCopyObjectTrust(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	kek := genAES(t, td, alice, "kek", Bool(ck.CKA_EXTRACTABLE, false))
	early := must[ObjectID](t)(td.CopyObject(ctx, alice, kek, Template{String(ck.CKA_LABEL, "early copy")}))
	if err := td.SetAttributes(ctx, admin, kek, Template{Bool(ck.CKA_TRUSTED, true)}); err != nil {
		t.Fatal(err)
	}
	trustIndexWhole(t, td)
	_, err := td.CopyObject(ctx, alice, kek, nil)
	wantErr(t, err, ErrActionProhibited)

	guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
	blob := must[[]byte](t)(td.WrapKey(alice, kek, kw, guarded))
	_, err = td.Decrypt(alice, early, kw, blob)
	wantErr(t, err, ErrKeyFunctionDenied)
	back := must[ObjectID](t)(td.UnwrapKey(ctx, alice, early, kw, blob, secretAES))
	if !boolAttr(t, td, alice, back, ck.CKA_WRAP_WITH_TRUSTED) {
		t.Fatal("unwrapped with a copy of a trusted key, the key lost CKA_WRAP_WITH_TRUSTED")
	}
	// Once the admin ends the trust, the copy decrypts again (the admin's decision).
	if err := td.SetAttributes(ctx, admin, kek, Template{Bool(ck.CKA_TRUSTED, false)}); err != nil {
		t.Fatal(err)
	}
	trustIndexWhole(t, td)
	if _, err := td.Decrypt(alice, early, kw, blob); err != nil {
		t.Fatalf("decrypt after the trust ended: %v", err)
	}
}

// A key made from another user's key stays bound when copied: the copy of
// a key unwrapped with a shared key does not decrypt, is not extractable,
// and what is derived or unwrapped from it is foreign in turn.
func TestCopyObjectKeepsBinding(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	ctx := t.Context()
	kek := genAES(t, td, alice, "kek")
	if err := td.ShareKey(ctx, alice, kek, "bob"); err != nil {
		t.Fatal(err)
	}
	blob := must[[]byte](t)(td.WrapKey(alice, kek, kw, genAES(t, td, alice, "inner")))
	u := must[ObjectID](t)(td.UnwrapKey(ctx, bob, kek, kw, blob, secretAES))
	cp := must[ObjectID](t)(td.CopyObject(ctx, bob, u, Template{String(ck.CKA_LABEL, "bob's copy")}))
	if got := object(t, td, cp).bound; got != boundUnwrapped {
		t.Fatalf("copy's binding %v, want %v", got, boundUnwrapped)
	}
	_, err := td.Decrypt(bob, cp, kw, blob)
	wantErr(t, err, ErrKeyFunctionDenied)
	_, err = td.CopyObject(ctx, bob, u, Template{Bool(ck.CKA_EXTRACTABLE, true)})
	wantErr(t, err, ErrAttributeReadOnly)
	_, err = td.ExportKey(ctx, bob, cp)
	wantErr(t, err, ErrKeyNotExtractable)
}

// A token copy made under an idempotent creation gets the creation's id
// and mark, so a resend of the copy to another HSM settles as any creation.
func TestCopyObjectIdempotent(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	orig := genAES(t, td, alice, "orig")
	token := []byte("0123456789abcdef-copy")
	copyAt := func(attempt uint32) ObjectID {
		ctx := WithCreation(t.Context(), Creation{Token: token, Attempt: attempt})
		id := must[ObjectID](t)(td.CopyObject(ctx, alice, orig, Template{String(ck.CKA_LABEL, "c")}))
		if want := creationObjectID("alice", token, attempt, ck.CKO_SECRET_KEY); id != want {
			t.Fatalf("copy id %v, want the creation's %v", id, want)
		}
		if err := td.SettleCreation(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := copyAt(1)
	second := copyAt(2)
	if _, err := td.Info(alice, first); err == nil {
		t.Fatal("the resent copy's loser survived")
	}
	if _, err := td.Info(alice, second); err != nil {
		t.Fatal(err)
	}
	if _, err := td.Info(alice, orig); err != nil {
		t.Fatalf("settling a copy destroyed the original: %v", err)
	}
}
