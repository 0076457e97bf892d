package main

import (
	"bytes"
	"testing"

	"github.com/miekg/pkcs11"
)

// C_CopyObject through the library, as an application calls it (Java's
// KeyStore.setEntry copies a session key into a token object so).
func TestMiekgCopyObject(t *testing.T) {
	l := coffer(t)
	x := &mechTest{l: l, s: l.session(t), used: map[uint]bool{}}
	label := randomName("copy-")
	orig, err := l.ctx.GenerateKey(x.s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_LABEL, "session original"),
		attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true), attr(pkcs11.CKA_EXTRACTABLE, false),
	})
	must(t, "C_GenerateKey", err)
	copyOf := func(t *testing.T, s pkcs11.SessionHandle, o pkcs11.ObjectHandle, tmpl ...*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
		t.Helper()
		h, err := l.ctx.CopyObject(s, o, tmpl)
		if err == nil {
			t.Cleanup(func() { _ = l.ctx.DestroyObject(x.s, h) })
		}
		return h, err
	}

	tok, err := copyOf(t, x.s, orig, attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_LABEL, label), attr(pkcs11.CKA_PRIVATE, true))
	must(t, "C_CopyObject to a token object", err)
	t.Run("token copy", func(t *testing.T) {
		if tok == orig {
			t.Fatal("the copy has the original's handle")
		}
		for typ, want := range map[uint][]byte{
			pkcs11.CKA_TOKEN: {1}, pkcs11.CKA_LABEL: []byte(label), pkcs11.CKA_CLASS: ulong(pkcs11.CKO_SECRET_KEY),
			pkcs11.CKA_KEY_TYPE: ulong(pkcs11.CKK_AES), pkcs11.CKA_VALUE_LEN: ulong(32), pkcs11.CKA_SENSITIVE: {1},
			pkcs11.CKA_EXTRACTABLE: {0}, pkcs11.CKA_NEVER_EXTRACTABLE: {1}, pkcs11.CKA_ALWAYS_SENSITIVE: {1},
			pkcs11.CKA_LOCAL: {1}, pkcs11.CKA_KEY_GEN_MECHANISM: ulong(pkcs11.CKM_AES_KEY_GEN),
		} {
			if got := x.get(t, tok, typ); !bytes.Equal(got, want) {
				t.Errorf("attribute %#x of the copy = %x, want %x", typ, got, want)
			}
		}
		if got := x.get(t, orig, pkcs11.CKA_TOKEN); !bytes.Equal(got, []byte{0}) {
			t.Error("copying made the original a token object")
		}
		// The same key: the original encrypts, the copy decrypts.
		x.sameAESKey(t, orig, tok)
		x.sameAESKey(t, tok, orig)
		// Found by its label, as a KeyStore finds an alias.
		must(t, "C_FindObjectsInit", l.ctx.FindObjectsInit(x.s, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, label), attr(pkcs11.CKA_TOKEN, true)}))
		found, _, err := l.ctx.FindObjects(x.s, 10)
		must(t, "C_FindObjects", err)
		must(t, "C_FindObjectsFinal", l.ctx.FindObjectsFinal(x.s))
		if len(found) != 1 || found[0] != tok {
			t.Fatalf("found %v by the copy's label, want [%v]", found, tok)
		}
	})
	t.Run("read-only session", func(t *testing.T) {
		ro, err := l.ctx.OpenSession(l.slot, pkcs11.CKF_SERIAL_SESSION)
		must(t, "C_OpenSession read-only", err)
		defer l.ctx.CloseSession(ro)
		_, err = copyOf(t, ro, tok) // a token object's copy is one
		wantRV(t, "copy of a token object in a read-only session", err, pkcs11.CKR_SESSION_READ_ONLY)
		_, err = copyOf(t, ro, orig, attr(pkcs11.CKA_TOKEN, true))
		wantRV(t, "token copy in a read-only session", err, pkcs11.CKR_SESSION_READ_ONLY)
		sess, err := copyOf(t, ro, tok, attr(pkcs11.CKA_TOKEN, false))
		must(t, "session copy in a read-only session", err)
		if got := x.get(t, sess, pkcs11.CKA_TOKEN); !bytes.Equal(got, []byte{0}) {
			t.Error("the session copy is a token object")
		}
		x.sameAESKey(t, tok, sess)
	})
	t.Run("template rules", func(t *testing.T) {
		for _, c := range []struct {
			what string
			tmpl []*pkcs11.Attribute
			rv   pkcs11.Error
		}{
			{"CKA_SENSITIVE true to false", []*pkcs11.Attribute{attr(pkcs11.CKA_SENSITIVE, false)}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
			{"CKA_EXTRACTABLE false to true", []*pkcs11.Attribute{attr(pkcs11.CKA_EXTRACTABLE, true)}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
			{"CKA_VALUE", []*pkcs11.Attribute{attr(pkcs11.CKA_VALUE, make([]byte, 32))}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
			{"CKA_VALUE_LEN", []*pkcs11.Attribute{attr(pkcs11.CKA_VALUE_LEN, 16)}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
			{"CKA_KEY_TYPE", []*pkcs11.Attribute{attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET)}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
			{"CKA_TRUSTED", []*pkcs11.Attribute{attr(pkcs11.CKA_TRUSTED, true)}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
			{"CKA_MODULUS of an AES key", []*pkcs11.Attribute{attr(pkcs11.CKA_MODULUS, []byte{1})}, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID},
		} {
			_, err := copyOf(t, x.s, tok, c.tmpl...)
			wantRV(t, c.what, err, c.rv)
		}
		// What may change does.
		cp, err := copyOf(t, x.s, tok, attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ID, []byte("new id")),
			attr(pkcs11.CKA_ENCRYPT, false), attr(pkcs11.CKA_COPYABLE, false), attr(pkcs11.CKA_DESTROYABLE, true))
		must(t, "C_CopyObject with changes", err)
		if got := x.get(t, cp, pkcs11.CKA_ID); string(got) != "new id" {
			t.Errorf("CKA_ID of the copy = %q", got)
		}
		err = l.ctx.EncryptInit(x.s, mech(pkcs11.CKM_AES_ECB, nil), cp)
		if err == nil {
			_, err = l.ctx.Encrypt(x.s, []byte("0123456789abcdef"))
		}
		wantRV(t, "encrypt with a copy made CKA_ENCRYPT false", err, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED)
		_, err = copyOf(t, x.s, cp)
		wantRV(t, "copy of a CKA_COPYABLE false object", err, pkcs11.CKR_ACTION_PROHIBITED)
	})
	t.Run("bad handles", func(t *testing.T) {
		_, err := copyOf(t, x.s, 0x7ffffff0)
		wantRV(t, "copy of an unknown object", err, pkcs11.CKR_OBJECT_HANDLE_INVALID)
		_, err = copyOf(t, 0x7ffffff0, tok)
		wantRV(t, "copy in an unknown session", err, pkcs11.CKR_SESSION_HANDLE_INVALID)
	})
}
