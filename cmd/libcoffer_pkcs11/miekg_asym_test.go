package main

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/miekg/pkcs11"
)

// get reads one attribute of an object.
func (x *mechTest) get(t *testing.T, o pkcs11.ObjectHandle, typ uint) []byte {
	t.Helper()
	a, err := x.l.ctx.GetAttributeValue(x.s, o, []*pkcs11.Attribute{attr(typ, nil)})
	must(t, "C_GetAttributeValue", err)
	return a[0].Value
}

// rsaPair generates an RSA-2048 session key pair and returns the public
// key as the standard library sees it.
func (x *mechTest) rsaPair(t *testing.T) (pub, priv pkcs11.ObjectHandle, key *rsa.PublicKey) {
	t.Helper()
	pub, priv, err := x.l.ctx.GenerateKeyPair(x.s, mech(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil),
		[]*pkcs11.Attribute{
			attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_MODULUS_BITS, 2048), attr(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			attr(pkcs11.CKA_VERIFY, true), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_WRAP, true),
		},
		[]*pkcs11.Attribute{
			attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SENSITIVE, true),
			attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_DECRYPT, true), attr(pkcs11.CKA_UNWRAP, true),
		})
	must(t, "C_GenerateKeyPair RSA", err)
	x.use(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN)
	n := new(big.Int).SetBytes(x.get(t, pub, pkcs11.CKA_MODULUS))
	e := new(big.Int).SetBytes(x.get(t, pub, pkcs11.CKA_PUBLIC_EXPONENT))
	if n.BitLen() != 2048 || e.Int64() != 65537 {
		t.Fatalf("RSA public key: %d-bit modulus, exponent %v", n.BitLen(), e)
	}
	return pub, priv, &rsa.PublicKey{N: n, E: int(e.Int64())}
}

var rsaHashes = []struct {
	hash             crypto.Hash
	digest, pkcs, ps uint
	mgf              uint
}{
	{crypto.SHA1, pkcs11.CKM_SHA_1, pkcs11.CKM_SHA1_RSA_PKCS, pkcs11.CKM_SHA1_RSA_PKCS_PSS, pkcs11.CKG_MGF1_SHA1},
	{crypto.SHA224, pkcs11.CKM_SHA224, pkcs11.CKM_SHA224_RSA_PKCS, pkcs11.CKM_SHA224_RSA_PKCS_PSS, pkcs11.CKG_MGF1_SHA224},
	{crypto.SHA256, pkcs11.CKM_SHA256, pkcs11.CKM_SHA256_RSA_PKCS, pkcs11.CKM_SHA256_RSA_PKCS_PSS, pkcs11.CKG_MGF1_SHA256},
	{crypto.SHA384, pkcs11.CKM_SHA384, pkcs11.CKM_SHA384_RSA_PKCS, pkcs11.CKM_SHA384_RSA_PKCS_PSS, pkcs11.CKG_MGF1_SHA384},
	{crypto.SHA512, pkcs11.CKM_SHA512, pkcs11.CKM_SHA512_RSA_PKCS, pkcs11.CKM_SHA512_RSA_PKCS_PSS, pkcs11.CKG_MGF1_SHA512},
}

func hashOf(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// sha256DigestInfo is the DER DigestInfo prefix for SHA-256 (RFC 8017 9.2).
var sha256DigestInfo = unhex("3031300d060960864801650304020105000420")

func testRSA(t *testing.T, x *mechTest) {
	pub, priv, key := x.rsaPair(t)
	data := []byte("signed with RSA through the token")
	t.Run("PKCS1 raw", func(t *testing.T) {
		digest := hashOf(crypto.SHA256, data)
		sig := x.sign(t, mech(pkcs11.CKM_RSA_PKCS, nil), priv, pub, append(bytes.Clone(sha256DigestInfo), digest...), false)
		if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest, sig); err != nil {
			t.Errorf("standard library verify: %v", err)
		}
	})
	for _, h := range rsaHashes {
		t.Run(h.hash.String(), func(t *testing.T) {
			sig := x.sign(t, mech(h.pkcs, nil), priv, pub, data, h.hash == crypto.SHA256)
			if err := rsa.VerifyPKCS1v15(key, h.hash, hashOf(h.hash, data), sig); err != nil {
				t.Errorf("PKCS#1 v1.5: standard library verify: %v", err)
			}
			x.use(h.pkcs)
			params := pkcs11.NewPSSParams(h.digest, h.mgf, uint(h.hash.Size()))
			sig = x.sign(t, mech(h.ps, params), priv, pub, data, false)
			opts := &rsa.PSSOptions{SaltLength: h.hash.Size(), Hash: h.hash}
			if err := rsa.VerifyPSS(key, h.hash, hashOf(h.hash, data), sig, opts); err != nil {
				t.Errorf("PSS: standard library verify: %v", err)
			}
			x.use(h.ps)
		})
	}
	t.Run("PSS raw", func(t *testing.T) {
		digest := hashOf(crypto.SHA256, data)
		sig := x.sign(t, mech(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, 32)), priv, pub, digest, false)
		if err := rsa.VerifyPSS(key, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
			t.Errorf("standard library verify: %v", err)
		}
		x.use(pkcs11.CKM_RSA_PKCS_PSS)
	})
	secret := []byte("a secret for RSA encryption")
	oaep := func() []*pkcs11.Mechanism {
		return mech(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, pkcs11.CKZ_DATA_SPECIFIED, []byte("label")))
	}
	t.Run("OAEP", func(t *testing.T) {
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, key, secret, []byte("label"))
		must(t, "standard library encrypt", err)
		if got := x.crypt(t, false, oaep(), priv, ct); !bytes.Equal(got, secret) {
			t.Errorf("C_Decrypt of the standard library's OAEP = %q", got)
		}
		ct = x.crypt(t, true, oaep(), pub, secret)
		if got := x.crypt(t, false, oaep(), priv, ct); !bytes.Equal(got, secret) {
			t.Errorf("C_Decrypt of C_Encrypt's OAEP = %q", got)
		}
		x.use(pkcs11.CKM_RSA_PKCS_OAEP)
	})
	t.Run("PKCS1 encrypt", func(t *testing.T) {
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, key, secret)
		must(t, "standard library encrypt", err)
		if got := x.crypt(t, false, mech(pkcs11.CKM_RSA_PKCS, nil), priv, ct); !bytes.Equal(got, secret) {
			t.Errorf("C_Decrypt of the standard library's PKCS#1 v1.5 = %q", got)
		}
		ct = x.crypt(t, true, mech(pkcs11.CKM_RSA_PKCS, nil), pub, secret)
		if got := x.crypt(t, false, mech(pkcs11.CKM_RSA_PKCS, nil), priv, ct); !bytes.Equal(got, secret) {
			t.Errorf("C_Decrypt of C_Encrypt's PKCS#1 v1.5 = %q", got)
		}
		x.use(pkcs11.CKM_RSA_PKCS)
	})
	for name, m := range map[string]func() []*pkcs11.Mechanism{"OAEP": oaep, "PKCS1": func() []*pkcs11.Mechanism { return mech(pkcs11.CKM_RSA_PKCS, nil) }} {
		t.Run("wrap an AES key with "+name, func(t *testing.T) {
			aesKey := x.aesKey(t, true) // a token object: see TestSessionObjectsTogether
			wrapped, err := x.l.ctx.WrapKey(x.s, m(), pub, aesKey)
			must(t, "C_WrapKey", err)
			if len(wrapped) != 256 {
				t.Errorf("wrapped key is %d bytes, want 256", len(wrapped))
			}
			back, err := x.l.ctx.UnwrapKey(x.s, m(), priv, wrapped, []*pkcs11.Attribute{
				attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true),
			})
			must(t, "C_UnwrapKey", err)
			x.sameAESKey(t, aesKey, back)
		})
	}
}

var curves = []struct {
	name  string
	curve elliptic.Curve
	oid   asn1.ObjectIdentifier
}{
	{"P-256", elliptic.P256(), asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}},
	{"P-384", elliptic.P384(), asn1.ObjectIdentifier{1, 3, 132, 0, 34}},
	{"P-521", elliptic.P521(), asn1.ObjectIdentifier{1, 3, 132, 0, 35}},
}

// ecPair generates an EC session key pair and returns the public key as the
// standard library sees it.
func (x *mechTest) ecPair(t *testing.T, curve elliptic.Curve, oid asn1.ObjectIdentifier) (pub, priv pkcs11.ObjectHandle, key *ecdsa.PublicKey) {
	t.Helper()
	params, _ := asn1.Marshal(oid)
	pub, priv, err := x.l.ctx.GenerateKeyPair(x.s, mech(pkcs11.CKM_EC_KEY_PAIR_GEN, nil),
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_EC_PARAMS, params), attr(pkcs11.CKA_VERIFY, true)},
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_DERIVE, true)})
	must(t, "C_GenerateKeyPair EC", err)
	x.use(pkcs11.CKM_EC_KEY_PAIR_GEN)
	var point []byte
	if _, err := asn1.Unmarshal(x.get(t, pub, pkcs11.CKA_EC_POINT), &point); err != nil {
		t.Fatalf("CKA_EC_POINT is not a DER OCTET STRING: %v", err)
	}
	key, err = ecdsa.ParseUncompressedPublicKey(curve, point)
	must(t, "parse CKA_EC_POINT", err)
	return pub, priv, key
}

// verifyECDSA checks an r||s signature with the standard library.
func verifyECDSA(t *testing.T, key *ecdsa.PublicKey, digest, sig []byte) {
	t.Helper()
	n := len(sig) / 2
	r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
	if n != (key.Curve.Params().BitSize+7)/8 || !ecdsa.Verify(key, digest, r, s) {
		t.Errorf("standard library rejects the %d-byte signature", len(sig))
	}
}

func testEC(t *testing.T, x *mechTest) {
	data := []byte("signed with ECDSA through the token")
	for _, c := range curves {
		t.Run(c.name, func(t *testing.T) {
			pub, priv, key := x.ecPair(t, c.curve, c.oid)
			digest := hashOf(crypto.SHA256, data)
			verifyECDSA(t, key, digest, x.sign(t, mech(pkcs11.CKM_ECDSA, nil), priv, pub, digest, false))
			x.use(pkcs11.CKM_ECDSA)
		})
	}
	pub, priv, key := x.ecPair(t, elliptic.P256(), curves[0].oid)
	for _, h := range []struct {
		hash crypto.Hash
		mech uint
	}{
		{crypto.SHA1, pkcs11.CKM_ECDSA_SHA1}, {crypto.SHA224, pkcs11.CKM_ECDSA_SHA224}, {crypto.SHA256, pkcs11.CKM_ECDSA_SHA256},
		{crypto.SHA384, pkcs11.CKM_ECDSA_SHA384}, {crypto.SHA512, pkcs11.CKM_ECDSA_SHA512},
	} {
		t.Run("P-256 "+h.hash.String(), func(t *testing.T) {
			sig := x.sign(t, mech(h.mech, nil), priv, pub, data, h.hash == crypto.SHA256)
			verifyECDSA(t, key, hashOf(h.hash, data), sig)
			x.use(h.mech)
		})
	}
	t.Run("ECDH1_DERIVE", func(t *testing.T) {
		peer, err := ecdh.P256().GenerateKey(rand.Reader)
		must(t, "peer key", err)
		params := pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peer.PublicKey().Bytes())
		shared, err := x.l.ctx.DeriveKey(x.s, mech(pkcs11.CKM_ECDH1_DERIVE, params), priv, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false),
			attr(pkcs11.CKA_SENSITIVE, false), attr(pkcs11.CKA_EXTRACTABLE, true),
		})
		must(t, "C_DeriveKey", err)
		ours, err := key.ECDH()
		must(t, "ECDH public key", err)
		want, err := peer.ECDH(ours)
		must(t, "standard library ECDH", err)
		if got := x.get(t, shared, pkcs11.CKA_VALUE); !bytes.Equal(got, want) {
			t.Errorf("derived %x, want %x", got, want)
		}
		x.use(pkcs11.CKM_ECDH1_DERIVE)
	})
}

func testEd25519(t *testing.T, x *mechTest) {
	params, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 101, 112})
	pub, priv, err := x.l.ctx.GenerateKeyPair(x.s, mech(ckmEdwardsKeyPairGen, nil),
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_EC_PARAMS, params), attr(pkcs11.CKA_VERIFY, true)},
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, true)})
	must(t, "C_GenerateKeyPair Ed25519", err)
	x.use(ckmEdwardsKeyPairGen)
	var point []byte
	if _, err := asn1.Unmarshal(x.get(t, pub, pkcs11.CKA_EC_POINT), &point); err != nil || len(point) != ed25519.PublicKeySize {
		t.Fatalf("CKA_EC_POINT: %x, %v", point, err)
	}
	data := []byte("signed with Ed25519 through the token")
	sig := x.sign(t, mech(ckmEdDSA, nil), priv, pub, data, false)
	if !ed25519.Verify(ed25519.PublicKey(point), data, sig) {
		t.Error("standard library rejects the Ed25519 signature")
	}
	x.use(ckmEdDSA)
}

// PKCS#11 v3.0 mechanisms that miekg/pkcs11 v1.1.1 does not name.
const (
	ckmEdwardsKeyPairGen = uint(ck.CKM_EC_EDWARDS_KEY_PAIR_GEN)
	ckmEdDSA             = uint(ck.CKM_EDDSA)
)
