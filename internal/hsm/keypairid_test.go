package hsm

import (
	"bytes"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/asn1"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func TestKeyPairID(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	gen := func(m ck.MechanismType, pub, priv Template) (ObjectID, ObjectID) {
		t.Helper()
		p, q, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: m}, pub, priv)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		return p, q
	}
	sum := func(b []byte) []byte {
		if fips140.Enforced() { // SHA-1 is refused: see keyPairID
			s := sha256.Sum256(b)
			return s[:20]
		}
		s := sha1.Sum(b)
		return s[:]
	}
	ecPoint := func(pub ObjectID) []byte {
		var raw []byte
		if _, err := asn1.Unmarshal(attr(t, td, alice, pub, ck.CKA_EC_POINT), &raw); err != nil {
			t.Fatal(err)
		}
		return raw
	}

	for _, c := range []struct {
		name string
		mech ck.MechanismType
		pub  Template
		want func(pub ObjectID) []byte // the id derived from the public key
	}{
		{"RSA: SHA-1 of the modulus", ck.CKM_RSA_PKCS_KEY_PAIR_GEN, Template{Ulong(ck.CKA_MODULUS_BITS, 2048)},
			func(pub ObjectID) []byte { return sum(attr(t, td, alice, pub, ck.CKA_MODULUS)) }},
		{"EC: SHA-1 of the point", ck.CKM_EC_KEY_PAIR_GEN, Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))}, func(pub ObjectID) []byte { return sum(ecPoint(pub)) }},
		{"Ed25519: SHA-1 of the public key", ck.CKM_EC_EDWARDS_KEY_PAIR_GEN, nil, func(pub ObjectID) []byte { return sum(ecPoint(pub)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			pub, priv := gen(c.mech, c.pub, nil)
			pid, qid := attr(t, td, alice, pub, ck.CKA_ID), attr(t, td, alice, priv, ck.CKA_ID)
			if want := c.want(pub); !bytes.Equal(pid, want) || !bytes.Equal(qid, want) {
				t.Fatalf("CKA_ID public %x, private %x; want both %x", pid, qid, want)
			}
			// Another pair, another id.
			pub2, _ := gen(c.mech, c.pub, nil)
			if bytes.Equal(attr(t, td, alice, pub2, ck.CKA_ID), pid) {
				t.Fatal("two key pairs got the same id")
			}
		})
	}
	t.Run("imported halves pair too", func(t *testing.T) {
		ec := Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))}
		pub, priv := gen(ck.CKM_EC_KEY_PAIR_GEN, ec, Template{Bool(ck.CKA_EXTRACTABLE, true)})
		want := attr(t, td, alice, pub, ck.CKA_ID)
		// The private key, unwrapped without an id, and the public key,
		// created from its point without one, get the same derived id.
		kek := genAES(t, td, alice, "kek")
		wrapped := must[[]byte](t)(td.WrapKey(alice, kek, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, priv))
		back := must[ObjectID](t)(td.UnwrapKey(ctx, alice, kek, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, wrapped,
			Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY))}))
		pub2 := must[ObjectID](t)(td.CreateObject(ctx, alice, append(ec, Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY)),
			Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_EC)), Bytes(ck.CKA_EC_POINT, attr(t, td, alice, pub, ck.CKA_EC_POINT)))))
		if got, got2 := attr(t, td, alice, back, ck.CKA_ID), attr(t, td, alice, pub2, ck.CKA_ID); !bytes.Equal(got, want) || !bytes.Equal(got2, want) {
			t.Fatalf("imported ids %x, %x; want %x", got, got2, want)
		}
		named := must[ObjectID](t)(td.UnwrapKey(ctx, alice, kek, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, wrapped,
			Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY)), Bytes(ck.CKA_ID, []byte{7})}))
		if got := attr(t, td, alice, named, ck.CKA_ID); !bytes.Equal(got, []byte{7}) {
			t.Fatalf("unwrapped with an id: %x", got)
		}
	})
	t.Run("a caller's id stands", func(t *testing.T) {
		ec := Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))}
		pub, priv := gen(ck.CKM_EC_KEY_PAIR_GEN, append(ec, Bytes(ck.CKA_ID, []byte{1})), Template{Bytes(ck.CKA_ID, []byte{1})})
		if !bytes.Equal(attr(t, td, alice, pub, ck.CKA_ID), []byte{1}) || !bytes.Equal(attr(t, td, alice, priv, ck.CKA_ID), []byte{1}) {
			t.Fatal("the template's CKA_ID was replaced")
		}
		// One half named (even empty): the other is left as the caller made it.
		pub, priv = gen(ck.CKM_EC_KEY_PAIR_GEN, ec, Template{Bytes(ck.CKA_ID, nil)})
		if len(attr(t, td, alice, pub, ck.CKA_ID)) != 0 || len(attr(t, td, alice, priv, ck.CKA_ID)) != 0 {
			t.Fatal("an id was derived though the private template names CKA_ID")
		}
	})
}
