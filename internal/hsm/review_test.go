package hsm

import (
	"bytes"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// A multi-part operation uses its key under the rules of every step, not
// only those of its start: a share withdrawn, a use attribute cleared, a
// key become trusted or destroyed after C_DecryptInit stops the operation's
// next Update and Final.
func TestOperationFollowsKeyRules(t *testing.T) {
	cbc := Mechanism{Type: ck.CKM_AES_CBC_PAD, IV: make([]byte, 16)}
	for _, tc := range []struct {
		name string
		// run starts an operation as the attacker, changes the key as the
		// owner or an admin, and returns the attacker's session, the
		// operation and the data it then feeds (something it must not
		// decrypt).
		run  func(t *testing.T, td *testDevice, admin, alice, bob SessionID) (SessionID, OpID, []byte)
		want *Kind
	}{
		{"share withdrawn", func(t *testing.T, td *testDevice, admin, alice, bob SessionID) (SessionID, OpID, []byte) {
			k := genAES(t, td, alice, "k", Bool(ck.CKA_UNWRAP, false))
			if err := td.ShareKey(t.Context(), alice, k, "bob"); err != nil {
				t.Fatal(err)
			}
			op := must[OpID](t)(td.Begin(bob, FnDecrypt, k, cbc))
			if err := td.UnshareKey(t.Context(), alice, k, "bob"); err != nil {
				t.Fatal(err)
			}
			return bob, op, must[[]byte](t)(td.Encrypt(alice, k, cbc, []byte("alice's secret after the share ended")))
		}, ErrKeyHandleInvalid},
		{"key destroyed", func(t *testing.T, td *testDevice, admin, alice, bob SessionID) (SessionID, OpID, []byte) {
			k := genAES(t, td, alice, "k", Bool(ck.CKA_UNWRAP, false))
			if err := td.ShareKey(t.Context(), alice, k, "bob"); err != nil {
				t.Fatal(err)
			}
			data := must[[]byte](t)(td.Encrypt(alice, k, cbc, []byte("alice's secret")))
			op := must[OpID](t)(td.Begin(bob, FnDecrypt, k, cbc))
			if err := td.DestroyObject(t.Context(), alice, k); err != nil {
				t.Fatal(err)
			}
			return bob, op, data
		}, ErrKeyHandleInvalid},
		{"decrypt cleared", func(t *testing.T, td *testDevice, admin, alice, bob SessionID) (SessionID, OpID, []byte) {
			k := genAES(t, td, alice, "k", Bool(ck.CKA_UNWRAP, false))
			if err := td.ShareKey(t.Context(), alice, k, "bob"); err != nil {
				t.Fatal(err)
			}
			op := must[OpID](t)(td.Begin(bob, FnDecrypt, k, cbc))
			if err := td.SetAttributes(t.Context(), alice, k, Template{Bool(ck.CKA_DECRYPT, false)}); err != nil {
				t.Fatal(err)
			}
			return bob, op, must[[]byte](t)(td.Encrypt(alice, k, cbc, []byte("alice's secret after decrypt was withdrawn")))
		}, ErrKeyFunctionDenied},
		{"unwrap set on a shared key", func(t *testing.T, td *testDevice, admin, alice, bob SessionID) (SessionID, OpID, []byte) {
			k := genAES(t, td, alice, "k", Bool(ck.CKA_UNWRAP, false))
			if err := td.ShareKey(t.Context(), alice, k, "bob"); err != nil {
				t.Fatal(err)
			}
			op := must[OpID](t)(td.Begin(bob, FnDecrypt, k, cbc))
			if err := td.SetAttributes(t.Context(), alice, k, Template{Bool(ck.CKA_UNWRAP, true)}); err != nil {
				t.Fatal(err)
			}
			x := genAES(t, td, alice, "x")
			return bob, op, must[[]byte](t)(td.WrapKey(alice, k, cbc, x)) // alice's key, wrapped
		}, ErrKeyFunctionDenied},
		{"key trusted after the start", func(t *testing.T, td *testDevice, admin, alice, bob SessionID) (SessionID, OpID, []byte) {
			w := genAES(t, td, alice, "w")
			op := must[OpID](t)(td.Begin(alice, FnDecrypt, w, cbc))
			if err := td.SetAttributes(t.Context(), admin, w, Template{Bool(ck.CKA_TRUSTED, true)}); err != nil {
				t.Fatal(err)
			}
			guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
			return alice, op, must[[]byte](t)(td.WrapKey(alice, w, cbc, guarded)) // leaves only wrapped
		}, ErrKeyFunctionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td, admin := activated(t)
			alice := withCU(t, td, admin, "alice")
			bob := withCU(t, td, admin, "bob")
			s, op, data := tc.run(t, td, admin, alice, bob)
			out, err := td.Update(s, op, data)
			if err == nil {
				var fin []byte
				fin, err = td.Finish(s, op, nil)
				out = append(out, fin...)
			}
			if err == nil {
				t.Fatalf("the operation went on and gave %d bytes in the clear", len(out))
			}
			wantErr(t, err, tc.want)
			if _, err := td.Finish(s, op, nil); err == nil || Code(err) != ck.CKR_OPERATION_NOT_INITIALIZED {
				t.Errorf("after a refusal the operation should be over; Finish: %v", err)
			}
		})
	}
}

// A resent creation leaves the trust index whole: an earlier send's trusted
// public key is not destroyed (mayDestroy), so the private key of that
// public key (here a copy the owner imported) still opens a trusted key;
// once an admin ends the trust, a resend destroys it and nothing counts.
func TestSettleCreationKeepsTrustIndex(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	token := []byte("0123456789abcdef-pair")
	gen := func(attempt uint32) (pub, priv ObjectID) {
		ctx := WithCreation(t.Context(), Creation{Token: token, Attempt: attempt})
		pub, priv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
			Template{Bool(ck.CKA_TOKEN, true), Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))},
			Template{Bool(ck.CKA_TOKEN, true), Bool(ck.CKA_DERIVE, true)})
		if err != nil {
			t.Fatal(err)
		}
		if err := td.SettleCreation(ctx, pub); err != nil {
			t.Fatal(err)
		}
		return pub, priv
	}
	pub1, priv1 := gen(1)
	if err := td.SetAttributes(t.Context(), admin, pub1, Template{Bool(ck.CKA_TRUSTED, true)}); err != nil {
		t.Fatal(err)
	}
	pkcs8 := must[[]byte](t)(td.ExportKey(t.Context(), alice, priv1))
	copyOf := must[ObjectID](t)(td.ImportPrivateKey(t.Context(), alice, pkcs8, Template{Bool(ck.CKA_TOKEN, true)}))
	if !td.opensTrusted(object(t, td, copyOf)) {
		t.Fatal("the copy of a trusted public key's private key should open a trusted key")
	}
	gen(2) // a resend: attempt 1's trusted public key stays
	if _, err := td.Info(alice, pub1); err != nil {
		t.Fatalf("a resend destroyed a trusted key: %v", err)
	}
	trustIndexWhole(t, td)
	if !td.opensTrusted(object(t, td, copyOf)) {
		t.Fatal("the trusted public key is kept, yet its private key no longer opens a trusted key")
	}
	if err := td.SetAttributes(t.Context(), admin, pub1, Template{Bool(ck.CKA_TRUSTED, false)}); err != nil {
		t.Fatal(err)
	}
	gen(3) // attempts 1 and 2 go
	if _, err := td.Info(alice, pub1); err == nil {
		t.Fatal("attempt 1's untrusted public key survived the resend")
	}
	trustIndexWhole(t, td)
	if td.opensTrusted(object(t, td, copyOf)) {
		t.Error("no trusted public key is left, yet the private key counts as the opener of one")
	}
}

// allowedMechs is CKA_ALLOWED_MECHANISMS in the canonical encoding: one
// CK_ULONG (eight bytes, little-endian) per mechanism.
func allowedMechs(ms ...ck.MechanismType) Attribute {
	var b []byte
	for _, m := range ms {
		b = append(b, Ulong(0, uint(m)).Value...)
	}
	return Bytes(ck.CKA_ALLOWED_MECHANISMS, b)
}

// CKA_ALLOWED_MECHANISMS, which a template may set, holds for every use of
// the key by anyone: its owner, and a user it is shared with.
func TestAllowedMechanismsEnforced(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	cbc := Mechanism{Type: ck.CKM_AES_CBC_PAD, IV: make([]byte, 16)}
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}
	macOnly := genAES(t, td, alice, "mac only", allowedMechs(ck.CKM_AES_CMAC))
	kwOnly := genAES(t, td, alice, "kw only", allowedMechs(ck.CKM_AES_KEY_WRAP))
	malformed := genAES(t, td, alice, "malformed", Bytes(ck.CKA_ALLOWED_MECHANISMS, []byte{1, 2, 3}))
	x := genAES(t, td, alice, "x")
	for _, k := range []ObjectID{macOnly, kwOnly} {
		if err := td.ShareKey(t.Context(), alice, k, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	derivePriv, _ := ecDeriver(t, td, alice)
	if err := td.SetAttributes(t.Context(), alice, derivePriv, Template{allowedMechs(ck.CKM_ECDSA)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want *Kind // nil: allowed
	}{
		{"listed mechanism", func() error { _, err := td.Sign(bob, macOnly, cmac, []byte("m")); return err }, nil},
		{"encrypt by the owner", func() error { _, err := td.Encrypt(alice, macOnly, cbc, []byte("m")); return err }, ErrMechanismInvalid},
		{"encrypt by a user it is shared with", func() error { _, err := td.Encrypt(bob, macOnly, cbc, []byte("m")); return err }, ErrMechanismInvalid},
		{"multi-part start", func() error { _, err := td.Begin(bob, FnEncrypt, macOnly, cbc); return err }, ErrMechanismInvalid},
		{"wrap with another mechanism", func() error {
			_, err := td.WrapKey(alice, kwOnly, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, x)
			return err
		}, ErrMechanismInvalid},
		{"wrap with the listed mechanism", func() error { _, err := td.WrapKey(alice, kwOnly, Mechanism{Type: ck.CKM_AES_KEY_WRAP}, x); return err }, nil},
		{"unwrap with another mechanism", func() error {
			_, err := td.UnwrapKey(t.Context(), bob, kwOnly, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, make([]byte, 40), secretAES)
			return err
		}, ErrMechanismInvalid},
		{"derive from an ECDSA-only key", func() error {
			_, err := td.DeriveKey(t.Context(), alice, derivePriv, derive(peerPoint(t)), Template{Bool(ck.CKA_TOKEN, true)})
			return err
		}, ErrMechanismInvalid},
		{"malformed list allows nothing", func() error { _, err := td.Sign(alice, malformed, cmac, []byte("m")); return err }, ErrMechanismInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}

	t.Run("list narrowed during an operation", func(t *testing.T) {
		op := must[OpID](t)(td.Begin(alice, FnEncrypt, x, cbc))
		if err := td.SetAttributes(t.Context(), alice, x, Template{allowedMechs(ck.CKM_AES_CMAC)}); err != nil {
			t.Fatal(err)
		}
		_, err := td.Update(alice, op, []byte("m"))
		wantErr(t, err, ErrMechanismInvalid)
	})
}

// The device itself refuses a creation token or attempt out of bounds,
// whoever calls it: such a send would make a record no HSM can load again
// (unmarshalCreationMark refuses it), stopping the HSM at its next start.
func TestCreationBoundsAtTheDevice(t *testing.T) {
	long := bytes.Repeat([]byte{'t'}, MaxCreationToken+1)
	for _, tc := range []struct {
		name string
		c    Creation
	}{
		{"attempt 0", Creation{Token: []byte("0123456789abcdef"), Attempt: 0}},
		{"attempt past the last", Creation{Token: []byte("0123456789abcdef"), Attempt: MaxCreationAttempts + 1}},
		{"short token", Creation{Token: []byte("short"), Attempt: 1}},
		{"long token", Creation{Token: long, Attempt: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td, admin := activated(t)
			alice := withCU(t, td, admin, "alice")
			_, err := td.GenerateKey(WithCreation(t.Context(), tc.c), alice, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate("k", 32))
			wantErr(t, err, ErrArgumentsBad)
			if _, err := New(t.Context(), Config{Store: td.store, Audit: td.audit, Password: testCost}); err != nil {
				t.Fatalf("the device no longer starts: %v", err)
			}
		})
	}
}

// A user a key is shared with for derivation cannot read the derived
// secret byte by byte: deriving keys of 1, 2, ... bytes (CKA_VALUE_LEN
// truncates the ECDH secret) and an HMAC under each gives one unknown byte
// at a time, found among 256 guesses. A key made from another user's key
// keeps at least 16 bytes.
func TestForeignDerivedKeyNotGuessable(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	ctx := t.Context()
	ecPriv, _ := ecDeriver(t, td, alice)
	if err := td.ShareKey(ctx, alice, ecPriv, "bob"); err != nil {
		t.Fatal(err)
	}
	pt := peerPoint(t) // another party's public key: the secret is alice's with it
	msg := []byte("oracle")
	hmac256 := Mechanism{Type: ck.CKM_SHA256_HMAC}
	generic := func(n uint) Template {
		return Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)), Ulong(ck.CKA_VALUE_LEN, n), Bool(ck.CKA_SIGN, true)}
	}
	var known []byte
	for n := uint(1); n <= 32; n++ {
		k, err := td.DeriveKey(ctx, bob, ecPriv, derive(pt), generic(n))
		if err != nil {
			wantErr(t, err, ErrTemplateInconsistent)
			if n >= 16 {
				t.Fatalf("a %d-byte key refused: %v", n, err)
			}
			break
		}
		if len(known) == 0 && n >= 16 {
			break // nothing guessed: the first key allowed is already 16 unknown bytes
		}
		mac := must[[]byte](t)(td.Sign(bob, k, hmac256, msg))
		found := false
		for b := range 256 {
			guess := append(bytes.Clone(known), byte(b))
			if bytes.Equal(hmacSHA256(guess, msg), mac) {
				known, found = guess, true
				break
			}
		}
		if !found {
			t.Fatalf("byte %d not found", n)
		}
	}
	if len(known) > 0 {
		t.Fatalf("bob read %d bytes of the ECDH secret of a key shared with him: %x", len(known), known)
	}
	// The owner's own derivation keeps PKCS#11's truncation.
	if _, err := td.DeriveKey(ctx, alice, ecPriv, derive(pt), generic(1)); err != nil {
		t.Fatalf("owner's 1-byte derivation: %v", err)
	}
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// What was wrapped under a trusted key stays CKA_WRAP_WITH_TRUSTED-bound
// for as long as it is wrapped: the key's crypto user cannot end the trust
// (clear CKA_TRUSTED, destroy the trusted object, have a resend destroy it)
// and then decrypt the blob or unwrap it into an extractable key. Only an
// admin ends a trust.
func TestTrustEndsOnlyByAdmin(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	trust := func(id ObjectID) {
		t.Helper()
		if err := td.SetAttributes(ctx, admin, id, Template{Bool(ck.CKA_TRUSTED, true)}); err != nil {
			t.Fatal(err)
		}
	}
	guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))

	// A trusted AES key, not extractable: its opener is itself.
	w := genAES(t, td, alice, "w", Bool(ck.CKA_EXTRACTABLE, false))
	trust(w)
	wBlob := must[[]byte](t)(td.WrapKey(alice, w, kw, guarded))

	// A trusted RSA public key whose private key is not extractable.
	rsaPair := func(pubTmpl Template) (pub, priv ObjectID) {
		pub, priv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_RSA_PKCS_KEY_PAIR_GEN},
			with(pubTmpl, Bool(ck.CKA_TOKEN, true), Ulong(ck.CKA_MODULUS_BITS, 2048)),
			Template{Bool(ck.CKA_TOKEN, true), Bool(ck.CKA_EXTRACTABLE, false)})
		if err != nil {
			t.Fatal(err)
		}
		return pub, priv
	}
	pub, priv := rsaPair(nil)
	trust(pub)
	rsaBlob := must[[]byte](t)(td.WrapKey(alice, pub, oaep256, guarded))

	// A trusted copy of another public key, made by a creation with a token
	// a later send can reuse.
	pub2, priv2 := rsaPair(nil)
	spki := must[[]byte](t)(td.ExportPublicKey(alice, pub2))
	token := []byte("0123456789abcdef-trusted")
	ctx1 := WithCreation(ctx, Creation{Token: token, Attempt: 1})
	copy1 := must[ObjectID](t)(td.ImportPublicKey(ctx1, alice, spki, Template{Bool(ck.CKA_TOKEN, true)}))
	noErr(t, td.SettleCreation(ctx1, copy1))
	noErr(t, td.DestroyObject(ctx, alice, pub2))
	trust(copy1)
	copyBlob := must[[]byte](t)(td.WrapKey(alice, copy1, oaep256, guarded))

	for _, tc := range []struct {
		name   string
		end    func() error // the attacker's try to end the trust
		opener ObjectID
		m      Mechanism
		blob   []byte
	}{
		{"owner clears CKA_TRUSTED of a secret key", func() error {
			return td.SetAttributes(ctx, alice, w, Template{Bool(ck.CKA_TRUSTED, false)})
		}, w, kw, wBlob},
		{"owner clears CKA_TRUSTED of a public key", func() error {
			return td.SetAttributes(ctx, alice, pub, Template{Bool(ck.CKA_TRUSTED, false)})
		}, priv, oaep256, rsaBlob},
		{"owner destroys the trusted public key", func() error {
			return td.DestroyObject(ctx, alice, pub)
		}, priv, oaep256, rsaBlob},
		{"a resend of the creation destroys the trusted public key", func() error {
			ctx2 := WithCreation(ctx, Creation{Token: token, Attempt: 2})
			id, err := td.GenerateKey(ctx2, alice, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate("resend", 16))
			if err != nil {
				return err
			}
			if err := td.SettleCreation(ctx2, id); err != nil {
				return err
			}
			if _, err := td.Info(alice, copy1); err != nil {
				return errors.New("the trusted copy was destroyed")
			}
			return nil
		}, priv2, oaep256, copyBlob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = tc.end() // refused or not, the wrapped key must stay bound
			if out, err := td.Decrypt(alice, tc.opener, tc.m, tc.blob); err == nil {
				t.Fatalf("decrypted the wrapped CKA_WRAP_WITH_TRUSTED key: %d bytes in the clear", len(out))
			}
			k, err := td.UnwrapKey(ctx, alice, tc.opener, tc.m, tc.blob, with(secretAES, Bool(ck.CKA_WRAP_WITH_TRUSTED, false)))
			if err == nil {
				secret, _ := td.ExportKey(ctx, alice, k)
				t.Fatalf("unwrapped without CKA_WRAP_WITH_TRUSTED; export gave %d bytes", len(secret))
			}
			wantErr(t, err, ErrTemplateInconsistent)
		})
	}
}

// A resent creation does not destroy what its owner could not destroy: an
// earlier send's CKA_DESTROYABLE=false key stays.
func TestSettleCreationKeepsUndestroyable(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	token := []byte("0123456789abcdef-keep")
	send := func(attempt uint32, extra ...Attribute) ObjectID {
		ctx := WithCreation(t.Context(), Creation{Token: token, Attempt: attempt})
		id := must[ObjectID](t)(td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate("k", 32, extra...)))
		noErr(t, td.SettleCreation(ctx, id))
		return id
	}
	kept := send(1, Bool(ck.CKA_DESTROYABLE, false))
	wantErr(t, td.DestroyObject(t.Context(), alice, kept), ErrActionProhibited)
	send(2)
	if _, err := td.Info(alice, kept); err != nil {
		t.Fatalf("a resend destroyed a CKA_DESTROYABLE=false key: %v", err)
	}
}

// A key unwrapped with another user's key is bound to the HSM, and so is
// what comes from it: unwrapped with it, or derived from it. Else the
// user a key-encryption key is shared with unwraps the owner's second-level
// key (bound) and with it the owner's keys wrapped under that (free, or
// decrypted in the clear).
func TestForeignBindingInherited(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	ctx := t.Context()
	kek := genAES(t, td, alice, "kek")
	noErr(t, td.ShareKey(ctx, alice, kek, "bob"))
	kek2 := genAES(t, td, alice, "kek2")
	y := genAES(t, td, alice, "y")
	b := must[[]byte](t)(td.WrapKey(alice, kek, kw, kek2)) // alice's key hierarchy, stored outside
	c := must[[]byte](t)(td.WrapKey(alice, kek2, kw, y))
	for _, tc := range []struct {
		name string
		r    Template // bob's template for alice's kek2
	}{
		{"second level may unwrap", with(secretAES, Bool(ck.CKA_UNWRAP, true), Bool(ck.CKA_DECRYPT, true))},
		{"second level for data only", with(secretAES, Bool(ck.CKA_UNWRAP, false), Bool(ck.CKA_DECRYPT, true))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := must[ObjectID](t)(td.UnwrapKey(ctx, bob, kek, kw, b, tc.r))
			if out, err := td.Decrypt(bob, r, kw, c); err == nil {
				t.Fatalf("bob decrypted alice's key wrapped under her second-level key: %d bytes", len(out))
			} else {
				wantErr(t, err, ErrKeyFunctionDenied)
			}
			if !boolAttr(t, td, bob, r, ck.CKA_UNWRAP) {
				return
			}
			k, err := td.UnwrapKey(ctx, bob, r, kw, c, with(secretAES, Bool(ck.CKA_EXTRACTABLE, true)))
			if err == nil {
				out, _ := td.ExportKey(ctx, bob, k)
				t.Fatalf("bob unwrapped alice's key extractable and exported %d bytes", len(out))
			}
			wantErr(t, err, ErrTemplateInconsistent)
			k = must[ObjectID](t)(td.UnwrapKey(ctx, bob, r, kw, c, secretAES))
			if boolAttr(t, td, bob, k, ck.CKA_EXTRACTABLE) {
				t.Fatal("a key unwrapped with a bound key is extractable")
			}
		})
	}
	t.Run("the binding is stored", func(t *testing.T) {
		r := must[ObjectID](t)(td.UnwrapKey(ctx, bob, kek, kw, b, with(secretAES, Bool(ck.CKA_DECRYPT, true))))
		td2 := td.reopen(t)
		s := td2.OpenSession()
		noErr(t, td2.Login(ctx, s, RoleCryptoUser, "bob", cuPW))
		_, err := td2.Decrypt(s, r, kw, c)
		wantErr(t, err, ErrKeyFunctionDenied)
	})
	t.Run("derived keys still decrypt", func(t *testing.T) {
		ecPriv, _ := ecDeriver(t, td, alice)
		noErr(t, td.ShareKey(ctx, alice, ecPriv, "bob"))
		d := must[ObjectID](t)(td.DeriveKey(ctx, bob, ecPriv, derive(peerPoint(t)),
			Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_ENCRYPT, true), Bool(ck.CKA_DECRYPT, true), Bool(ck.CKA_UNWRAP, false)}))
		ct := must[[]byte](t)(td.Encrypt(bob, d, gcm12, []byte("from the peer")))
		if pt, err := td.Decrypt(bob, d, gcm12, ct); err != nil || string(pt) != "from the peer" {
			t.Fatalf("decrypt with a derived key: %q, %v", pt, err)
		}
	})
}
