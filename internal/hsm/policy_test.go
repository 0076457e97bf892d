package hsm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"maps"
	"slices"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

var (
	secretAES = Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Bool(ck.CKA_TOKEN, true)}
	kw        = Mechanism{Type: ck.CKM_AES_KEY_WRAP}
	kwp       = Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}
	gcm12     = Mechanism{Type: ck.CKM_AES_GCM, IV: []byte("caller-iv-12"), TagBits: 128}
	oaep256   = Mechanism{Type: ck.CKM_RSA_PKCS_OAEP, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256}
)

func with(t Template, extra ...Attribute) Template { return append(slices.Clone(t), extra...) }

// ecDeriver makes a token EC P-256 key pair that may derive and returns the
// private key and the public point (DER OCTET STRING).
func ecDeriver(t testing.TB, td *testDevice, s SessionID) (ObjectID, []byte) {
	t.Helper()
	pub, priv, err := td.GenerateKeyPair(t.Context(), s, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
		Template{Bool(ck.CKA_TOKEN, true), Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))},
		Template{Bool(ck.CKA_TOKEN, true), Bool(ck.CKA_DERIVE, true)})
	if err != nil {
		t.Fatal(err)
	}
	return priv, attr(t, td, s, pub, ck.CKA_EC_POINT)
}

func peerPoint(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k.PublicKey.Bytes() //nolint:staticcheck // uncompressed point, as CKD_NULL takes it
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func derive(pt []byte) Mechanism {
	return Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_NULL, PublicData: pt}
}

func boolAttr(t testing.TB, td *testDevice, s SessionID, id ObjectID, a ck.AttributeType) bool {
	t.Helper()
	v := attr(t, td, s, id, a)
	return len(v) == 1 && v[0] == 1
}

// Finding 1: only an admin may make a key trusted, by any path; every
// creation template of a crypto user that says CKA_TRUSTED=true is refused.
func TestTrustedOnlyByAdmin(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	kek := genAES(t, td, alice, "kek")
	ecPriv, _ := ecDeriver(t, td, alice)
	wrapped := must[[]byte](t)(td.WrapKey(alice, kek, kw, genAES(t, td, alice, "payload")))
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := must[[]byte](t)(x509.MarshalPKIXPublicKey(&rk.PublicKey))
	trusted := Bool(ck.CKA_TRUSTED, true)

	for _, c := range []struct {
		name string
		make func() (ObjectID, error)
	}{
		{"create secret key", func() (ObjectID, error) {
			return td.CreateObject(ctx, alice, with(secretAES, Bytes(ck.CKA_VALUE, make([]byte, 32)), trusted))
		}},
		{"create public key", func() (ObjectID, error) {
			return td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_RSA)),
				Bytes(ck.CKA_MODULUS, rk.N.Bytes()), Bytes(ck.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}), trusted})
		}},
		{"create certificate", func() (ObjectID, error) {
			return td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_CERTIFICATE)), Ulong(ck.CKA_CERTIFICATE_TYPE, 0),
				Bytes(ck.CKA_VALUE, []byte("der")), trusted})
		}},
		{"generate key", func() (ObjectID, error) {
			return td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate("t", 32, trusted))
		}},
		{"generate key pair", func() (ObjectID, error) {
			pub, _, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
				Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256())), trusted}, nil)
			return pub, err
		}},
		{"unwrap", func() (ObjectID, error) { return td.UnwrapKey(ctx, alice, kek, kw, wrapped, with(secretAES, trusted)) }},
		{"derive", func() (ObjectID, error) {
			return td.DeriveKey(ctx, alice, ecPriv, derive(peerPoint(t)), Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32), trusted})
		}},
		{"import public key", func() (ObjectID, error) { return td.ImportPublicKey(ctx, alice, rsaKey, Template{trusted}) }},
		{"set by the owner", func() (ObjectID, error) { return kek, td.SetAttributes(ctx, alice, kek, Template{trusted}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := c.make()
			wantErr(t, err, ErrAttributeReadOnly)
			if id != 0 && c.name != "set by the owner" {
				t.Fatalf("made object %v", id)
			}
		})
	}
	if boolAttr(t, td, alice, kek, ck.CKA_TRUSTED) {
		t.Fatal("the crypto user made its key trusted")
	}

	// The admin path: an admin marks a crypto user's key trusted, and
	// changes nothing else.
	wantErr(t, td.SetAttributes(ctx, admin, kek, Template{String(ck.CKA_LABEL, "mine")}), ErrRoleNotPermitted)
	if err := td.SetAttributes(ctx, admin, kek, Template{trusted}); err != nil {
		t.Fatalf("admin sets CKA_TRUSTED: %v", err)
	}
	if !boolAttr(t, td, alice, kek, ck.CKA_TRUSTED) {
		t.Fatal("CKA_TRUSTED not set")
	}
	if !slices.Contains(td.audit.ops(), "object.set-attributes:ok") {
		t.Fatalf("admin change not audited: %v", td.audit.ops())
	}
	guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
	if _, err := td.WrapKey(alice, kek, kw, guarded); err != nil {
		t.Fatalf("wrap under the trusted key: %v", err)
	}
}

// Finding 1 (second part): a key wrapped under a trusted key cannot come
// back without CKA_WRAP_WITH_TRUSTED, and the trusted key's unwrapping side
// does not decrypt the wrapped bytes in the clear.
func TestUnwrapKeepsWrapWithTrusted(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	tkek := genAES(t, td, alice, "trusted kek")
	plain := genAES(t, td, alice, "plain kek")
	rsaPub, rsaPriv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_RSA_PKCS_KEY_PAIR_GEN},
		Template{Bool(ck.CKA_TOKEN, true), Ulong(ck.CKA_MODULUS_BITS, 2048)}, Template{Bool(ck.CKA_TOKEN, true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []ObjectID{tkek, rsaPub} {
		if err := td.SetAttributes(ctx, admin, id, Template{Bool(ck.CKA_TRUSTED, true)}); err != nil {
			t.Fatalf("admin sets CKA_TRUSTED: %v", err)
		}
	}
	guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))

	for _, c := range []struct {
		name      string
		wrap, unw ObjectID
		m         Mechanism
	}{
		{"AES-KW", tkek, tkek, kw},
		{"AES-GCM", tkek, tkek, gcm12},
		{"RSA-OAEP", rsaPub, rsaPriv, oaep256},
	} {
		t.Run(c.name, func(t *testing.T) {
			blob := must[[]byte](t)(td.WrapKey(alice, c.wrap, c.m, guarded))
			_, err := td.UnwrapKey(ctx, alice, c.unw, c.m, blob, with(secretAES, Bool(ck.CKA_WRAP_WITH_TRUSTED, false)))
			wantErr(t, err, ErrTemplateInconsistent)
			back := must[ObjectID](t)(td.UnwrapKey(ctx, alice, c.unw, c.m, blob, secretAES))
			if !boolAttr(t, td, alice, back, ck.CKA_WRAP_WITH_TRUSTED) {
				t.Fatal("unwrapped copy lost CKA_WRAP_WITH_TRUSTED")
			}
			_, err = td.WrapKey(alice, plain, kw, back)
			wantErr(t, err, ErrKeyNotWrappable)
			_, err = td.ExportKey(ctx, alice, back)
			wantErr(t, err, ErrKeyNotWrappable)
			_, err = td.Decrypt(alice, c.unw, c.m, blob)
			wantErr(t, err, ErrKeyFunctionDenied)
		})
	}
	// A key unwrapped with an untrusted key keeps the template's choice.
	blob := must[[]byte](t)(td.WrapKey(alice, plain, kw, genAES(t, td, alice, "free")))
	back := must[ObjectID](t)(td.UnwrapKey(ctx, alice, plain, kw, blob, secretAES))
	if boolAttr(t, td, alice, back, ck.CKA_WRAP_WITH_TRUSTED) {
		t.Fatal("CKA_WRAP_WITH_TRUSTED forced under an untrusted key")
	}
	if _, err := td.Decrypt(alice, plain, kw, blob); err != nil {
		t.Fatalf("decrypt with an untrusted key: %v", err)
	}
}

// Finding 2: export, wrapping and reading CKA_VALUE share one rule for a
// key leaving the HSM.
func TestExportHonoursWrapRules(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	ctx := t.Context()
	kek := genAES(t, td, alice, "kek")
	open := Bool(ck.CKA_SENSITIVE, false)
	keys := map[string]ObjectID{
		"plain":             genAES(t, td, alice, "plain", open),
		"wrap with trusted": genAES(t, td, alice, "wwt", open, Bool(ck.CKA_WRAP_WITH_TRUSTED, true)),
		"not extractable":   genAES(t, td, alice, "ne", open, Bool(ck.CKA_EXTRACTABLE, false)),
		"shared":            genAES(t, td, alice, "shared", open),
	}
	if err := td.ShareKey(ctx, alice, keys["shared"], "bob"); err != nil {
		t.Fatal(err)
	}
	if err := td.ShareKey(ctx, alice, kek, "bob"); err != nil {
		t.Fatal(err)
	}
	pub, _, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
		Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys["public"] = pub

	for _, c := range []struct {
		name, key string
		who       SessionID
		want      *Kind // export and wrap; nil: allowed
	}{
		{"owner, plain", "plain", alice, nil},
		{"owner, wrap with trusted", "wrap with trusted", alice, ErrKeyNotWrappable},
		{"owner, not extractable", "not extractable", alice, ErrKeyNotExtractable},
		{"shared user", "shared", bob, ErrNotOwner},
		{"admin", "plain", admin, ErrAdminCannotUseKeys},
		{"public key", "public", alice, ErrKeyHandleInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := keys[c.key]
			raw, err := td.ExportKey(ctx, c.who, id)
			_, werr := td.WrapKey(c.who, kek, kwp, id)
			vals, rerr := td.GetAttributes(c.who, id, []ck.AttributeType{ck.CKA_VALUE})
			if c.want == nil {
				if err != nil || werr != nil || rerr != nil {
					t.Fatalf("export %v, wrap %v, read %v", err, werr, rerr)
				}
				if !bytes.Equal(raw, vals[0].Value) || len(raw) != 32 {
					t.Fatal("export and CKA_VALUE differ")
				}
				return
			}
			wantErr(t, err, c.want)
			if raw != nil {
				t.Fatal("refused export returned key bytes")
			}
			if c.key != "public" { // a public key has no CKA_VALUE to read
				wantErr(t, werr, c.want)
				wantErr(t, rerr, ErrAttributeSensitive)
				if vals != nil && vals[0].Value != nil {
					t.Fatal("CKA_VALUE leaked")
				}
			}
		})
	}
}

// Finding 9: admins and appliance users see metadata, never a crypto
// user's key material or the value of a private data object, by any read.
func TestAdminsSeeMetadataOnly(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	if err := td.CreateUser(ctx, admin, "au", RoleApplianceUser, cuPW, Approvals{}); err != nil {
		t.Fatal(err)
	}
	au := td.OpenSession()
	if err := td.Login(ctx, au, RoleApplianceUser, "au", cuPW); err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{0x5a}, 32)
	key := must[ObjectID](t)(td.CreateObject(ctx, alice, with(secretAES, Bytes(ck.CKA_VALUE, secret), Bool(ck.CKA_SENSITIVE, false), String(ck.CKA_LABEL, "k"))))
	private := must[ObjectID](t)(td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_DATA)), Bool(ck.CKA_TOKEN, true),
		String(ck.CKA_LABEL, "private data"), Bytes(ck.CKA_VALUE, []byte("private value"))}))
	public := must[ObjectID](t)(td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_DATA)), Bool(ck.CKA_TOKEN, true),
		Bool(ck.CKA_PRIVATE, false), Bytes(ck.CKA_VALUE, []byte("public value"))}))
	kek := genAES(t, td, alice, "kek")

	// The owner reads all of it.
	if got := attr(t, td, alice, key, ck.CKA_VALUE); !bytes.Equal(got, secret) {
		t.Fatal("owner cannot read its non-sensitive key")
	}
	if got := must[[]ObjectID](t)(td.FindObjects(alice, Template{Bytes(ck.CKA_VALUE, []byte("private value"))})); !slices.Equal(got, []ObjectID{private}) {
		t.Fatalf("owner's find by value: %v", got)
	}
	for _, who := range []struct {
		name string
		s    SessionID
	}{{"admin", admin}, {"appliance user", au}} {
		t.Run(who.name, func(t *testing.T) {
			for _, c := range []struct {
				name string
				id   ObjectID
				t    ck.AttributeType
			}{
				{"key value", key, ck.CKA_VALUE},
				{"private data value", private, ck.CKA_VALUE},
			} {
				vals, err := td.GetAttributes(who.s, c.id, []ck.AttributeType{ck.CKA_LABEL, c.t})
				wantErr(t, err, ErrAttributeSensitive)
				if vals[1].Value != nil || vals[1].Err != ErrAttributeSensitive {
					t.Fatalf("%s: %+v", c.name, vals[1])
				}
				if len(vals[0].Value) == 0 {
					t.Fatalf("%s: label (metadata) not readable", c.name)
				}
			}
			if got := attr(t, td, who.s, public, ck.CKA_VALUE); string(got) != "public value" {
				t.Fatalf("public data object value = %q", got)
			}
			for _, probe := range []Template{
				{Bytes(ck.CKA_VALUE, []byte("private value"))},
				{Bytes(ck.CKA_VALUE, secret)},
			} {
				if got := must[[]ObjectID](t)(td.FindObjects(who.s, probe)); len(got) != 0 {
					t.Fatalf("find by a value it may not read matched %v", got)
				}
			}
			if got := must[[]ObjectID](t)(td.FindObjects(who.s, Template{String(ck.CKA_LABEL, "private data")})); !slices.Equal(got, []ObjectID{private}) {
				t.Fatalf("find by label: %v", got)
			}
			info := must[ObjectInfo](t)(td.Info(who.s, key))
			if info.Owner != "alice" || info.Label != "k" {
				t.Fatalf("info: %+v", info)
			}
			_, err := td.ExportKey(ctx, who.s, key)
			if err == nil {
				t.Fatal("export by a non-crypto user")
			}
			if _, err := td.WrapKey(who.s, kek, kw, key); err == nil {
				t.Fatal("wrap by a non-crypto user")
			}
		})
	}
}

// Finding 10: a key derived from or unwrapped with a key the caller does
// not own is the caller's, but stays inside the HSM.
func TestForeignKeysStayInside(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	ctx := t.Context()
	ecPriv, _ := ecDeriver(t, td, alice)
	kek := genAES(t, td, alice, "kek")
	for _, id := range []ObjectID{ecPriv, kek} {
		if err := td.ShareKey(ctx, alice, id, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	secretOfAlice := genAES(t, td, alice, "alice's secret")
	blob := must[[]byte](t)(td.WrapKey(alice, kek, kw, secretOfAlice))
	derived := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_TOKEN, true)}
	pt := peerPoint(t)

	type make func(who SessionID, tmpl Template) (ObjectID, error)
	paths := []struct {
		name string
		make make
		tmpl Template
	}{
		{"derive", func(who SessionID, tmpl Template) (ObjectID, error) {
			return td.DeriveKey(ctx, who, ecPriv, derive(pt), tmpl)
		}, derived},
		{"unwrap", func(who SessionID, tmpl Template) (ObjectID, error) {
			return td.UnwrapKey(ctx, who, kek, kw, blob, tmpl)
		}, secretAES},
	}
	for _, c := range paths {
		t.Run(c.name, func(t *testing.T) {
			for _, bad := range []Attribute{Bool(ck.CKA_EXTRACTABLE, true), Bool(ck.CKA_SENSITIVE, false)} {
				_, err := c.make(bob, with(c.tmpl, bad))
				wantErr(t, err, ErrTemplateInconsistent)
			}
			id := must[ObjectID](t)(c.make(bob, c.tmpl))
			if info := must[ObjectInfo](t)(td.Info(bob, id)); info.Owner != "bob" {
				t.Fatalf("owner %q", info.Owner)
			}
			if boolAttr(t, td, bob, id, ck.CKA_EXTRACTABLE) || !boolAttr(t, td, bob, id, ck.CKA_SENSITIVE) {
				t.Fatal("bob's key from alice's key is extractable or not sensitive")
			}
			_, err := td.ExportKey(ctx, bob, id)
			wantErr(t, err, ErrKeyNotExtractable)
			_, err = td.WrapKey(bob, kek, kw, id)
			wantErr(t, err, ErrKeyNotExtractable)
			wantErr(t, td.SetAttributes(ctx, bob, id, Template{Bool(ck.CKA_EXTRACTABLE, true)}), ErrAttributeReadOnly)
			if _, err := td.Encrypt(bob, id, gcm12, []byte("usable")); err != nil {
				t.Fatalf("bob cannot use the key: %v", err)
			}

			// The owner's own derive and unwrap keep the template's choice.
			own := must[ObjectID](t)(c.make(alice, c.tmpl))
			if !boolAttr(t, td, alice, own, ck.CKA_EXTRACTABLE) {
				t.Fatal("owner's key forced non-extractable")
			}
		})
	}

	// Decrypting with the shared key would open what alice wrapped under
	// it: a shared key that may unwrap does not decrypt for bob. Shared
	// for data (CKA_UNWRAP false), it does.
	for _, m := range []Mechanism{kw, gcm12} {
		_, err := td.Decrypt(bob, kek, m, must[[]byte](t)(td.WrapKey(alice, kek, m, secretOfAlice)))
		wantErr(t, err, ErrKeyFunctionDenied)
		_, err = td.Begin(bob, FnDecrypt, kek, m)
		wantErr(t, err, ErrKeyFunctionDenied)
	}
	if _, err := td.Decrypt(alice, kek, kw, blob); err != nil {
		t.Fatalf("the owner decrypts: %v", err)
	}
	data := genAES(t, td, alice, "data", Bool(ck.CKA_UNWRAP, false))
	if err := td.ShareKey(ctx, alice, data, "bob"); err != nil {
		t.Fatal(err)
	}
	ct := must[[]byte](t)(td.Encrypt(alice, data, gcm12, []byte("for bob")))
	if pt, err := td.Decrypt(bob, data, gcm12, ct); err != nil || string(pt) != "for bob" {
		t.Fatalf("bob decrypts with a data key shared with him: %q, %v", pt, err)
	}

	// Bob may still wrap a key of his own under alice's key, and unwrap
	// key material he supplies: it comes back bound to the HSM.
	mine := genAES(t, td, bob, "bob's")
	own := must[[]byte](t)(td.WrapKey(bob, kek, kw, mine))
	back := must[ObjectID](t)(td.UnwrapKey(ctx, bob, kek, kw, own, secretAES))
	if boolAttr(t, td, bob, back, ck.CKA_EXTRACTABLE) {
		t.Fatal("key unwrapped with a shared key is extractable")
	}
}

// trustIndexWhole fails unless the device's trust index is what a count of
// its objects gives (the invariant beside Device.trusted).
func trustIndexWhole(t testing.TB, td *testDevice) {
	t.Helper()
	td.mu.RLock()
	defer td.mu.RUnlock()
	want := map[keyID]int{}
	for _, o := range td.objects {
		if k, ok := trustedPublic(o); ok {
			want[k]++
		}
	}
	if !maps.Equal(td.trusted, want) {
		t.Fatalf("trust index %v, a count of the objects gives %v", td.trusted, want)
	}
}

// The unwrapping side of a trusted public key is found through the trust
// index, which follows every change of the object table: trust set and
// cleared by an admin or the owner, a second trusted copy, destruction,
// records arriving from a peer (set, cleared, deleted), and objects loaded
// at start. Sharing withdrawn and a session closed leave it whole.
func TestOpensTrustedFollowsTheTable(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	withCU(t, td, admin, "bob")
	ctx := t.Context()
	pub, priv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_RSA_PKCS_KEY_PAIR_GEN},
		Template{Bool(ck.CKA_TOKEN, true), Ulong(ck.CKA_MODULUS_BITS, 2048)}, Template{Bool(ck.CKA_TOKEN, true)})
	noErr(t, err)
	spki := must[[]byte](t)(td.ExportPublicKey(alice, pub))
	ct := must[[]byte](t)(td.Encrypt(alice, pub, oaep256, []byte("payload")))
	setTrusted := func(s SessionID, id ObjectID, v bool) {
		t.Helper()
		noErr(t, td.SetAttributes(ctx, s, id, Template{Bool(ck.CKA_TRUSTED, v)}))
	}
	// peer is the record of pub as another HSM sends it, with CKA_TRUSTED v.
	var rec []byte
	peer := func(v bool) func() ([]byte, error) {
		return func() ([]byte, error) {
			o, err := unmarshalObject(rec)
			if err != nil {
				return nil, err
			}
			o.setBool(ck.CKA_TRUSTED, v)
			return o.marshal()
		}
	}
	var dup ObjectID
	for _, step := range []struct {
		name   string
		do     func()
		sealed bool // priv opens a trusted key: it does not decrypt
	}{
		{"generated", func() {}, false},
		{"admin trusts the public key", func() { setTrusted(admin, pub, true) }, true},
		{"a second trusted copy", func() {
			dup = must[ObjectID](t)(td.ImportPublicKey(ctx, alice, spki, Template{Bool(ck.CKA_TOKEN, true)}))
			setTrusted(admin, dup, true)
		}, true},
		{"admin untrusts one copy", func() { setTrusted(admin, pub, false) }, true},
		{"admin untrusts the other", func() { setTrusted(admin, dup, false) }, false},
		{"sharing withdrawn from a deleted user", func() {
			setTrusted(admin, dup, true)
			noErr(t, td.ShareKey(ctx, alice, dup, "bob"))
			noErr(t, td.DeleteUser(ctx, admin, "bob", false, Approvals{}))
		}, true},
		{"a session closed with its public key", func() {
			s := td.OpenSession()
			noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW))
			id := must[ObjectID](t)(td.ImportPublicKey(ctx, s, spki, Template{Bool(ck.CKA_TOKEN, false)}))
			// An admin sees no session object, so it cannot make one trusted.
			err := td.SetAttributes(ctx, admin, id, Template{Bool(ck.CKA_TRUSTED, true)})
			wantErr(t, err, ErrObjectHandleInvalid)
			noErr(t, td.CloseSession(s))
		}, true},
		{"trusted public key destroyed once the admin untrusts it", func() {
			wantErr(t, td.DestroyObject(ctx, alice, dup), ErrActionProhibited)
			setTrusted(admin, dup, false)
			noErr(t, td.DestroyObject(ctx, alice, dup))
		}, false},
		{"admin trusts, then untrusts, owner destroys", func() {
			setTrusted(admin, pub, true)
			rec = slices.Clone(td.store.recs[RecordObject][pub.String()])
			setTrusted(admin, pub, false)
			noErr(t, td.DestroyObject(ctx, alice, pub))
		}, false},
		{"a trusted record arrives from a peer", func() { noErr(t, td.Reload(RecordObject, pub.String(), peer(true))) }, true},
		{"an untrusted record arrives from a peer", func() { noErr(t, td.Reload(RecordObject, pub.String(), peer(false))) }, false},
		{"trusted again from a peer", func() { noErr(t, td.Reload(RecordObject, pub.String(), peer(true))) }, true},
		{"the peer deletes it", func() {
			noErr(t, td.Reload(RecordObject, pub.String(), func() ([]byte, error) { return nil, nil }))
		}, false},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.do()
			trustIndexWhole(t, td)
			if got := td.opensTrusted(object(t, td, priv)); got != step.sealed {
				t.Fatalf("opensTrusted = %v, want %v", got, step.sealed)
			}
			_, err := td.Decrypt(alice, priv, oaep256, ct)
			if step.sealed {
				wantErr(t, err, ErrKeyFunctionDenied)
			} else {
				noErr(t, err)
			}
		})
	}

	t.Run("a trusted record loaded at start", func(t *testing.T) {
		b, err := peer(true)()
		noErr(t, err)
		noErr(t, td.store.Put(ctx, RecordObject, pub.String(), b))
		td2 := td.reopen(t)
		trustIndexWhole(t, td2)
		s := td2.OpenSession()
		noErr(t, td2.Login(ctx, s, RoleCryptoUser, "alice", cuPW))
		_, err = td2.Decrypt(s, priv, oaep256, ct)
		wantErr(t, err, ErrKeyFunctionDenied)
	})
}

// object returns the object id names in td's table.
func object(t testing.TB, td *testDevice, id ObjectID) *Object {
	t.Helper()
	td.mu.RLock()
	defer td.mu.RUnlock()
	o := td.objects[id]
	if o == nil {
		t.Fatalf("no object %v", id)
	}
	return o
}

// opensTrusted answers for every key type that unwraps or could: a trusted
// secret key is itself the opener; an RSA, EC or Ed25519 private key opens a
// trusted key when a trusted public key holds its public half, and only
// that public half (another key of the same type does not count).
func TestOpensTrustedKeyTypes(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	k := makeKeys(t, td, alice)
	other := makeKeys(t, td, alice)
	trust := func(id ObjectID, v bool) {
		t.Helper()
		noErr(t, td.SetAttributes(ctx, admin, id, Template{Bool(ck.CKA_TRUSTED, v)}))
	}
	for _, c := range []struct {
		name         string
		trust, opens ObjectID
		notOpens     ObjectID // a key of the same type that stays outside
	}{
		{"AES secret key", k.aes, k.aes, other.aes},
		{"RSA", k.rsaPub, k.rsaPriv, other.rsaPriv},
		{"EC P-256", k.ecPub, k.ecPriv, other.ecPriv},
		{"EC P-384", k.p384Pub, k.p384Priv, other.p384Priv},
		{"Ed25519", k.edPub, k.edPriv, other.edPriv},
	} {
		t.Run(c.name, func(t *testing.T) {
			opens := func(id ObjectID) bool { return td.opensTrusted(object(t, td, id)) }
			if opens(c.opens) {
				t.Fatal("opens a trusted key before any is trusted")
			}
			trust(c.trust, true)
			trustIndexWhole(t, td)
			if !opens(c.opens) {
				t.Fatal("does not open its trusted key")
			}
			if opens(c.notOpens) {
				t.Fatal("another key of the same type opens it")
			}
			trust(c.trust, false)
			trustIndexWhole(t, td)
			if opens(c.opens) {
				t.Fatal("still opens a trusted key after trust was cleared")
			}
		})
	}
}
