package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/mldsa"
	"crypto/rsa"
	"crypto/sha256"
	"slices"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// keyPairID is the CKA_ID a generated key pair gets when neither template
// names one, so that tools which pair a private key with its public key by
// id (pkcs11-tool --test, PKCS#11 URIs, OpenSSL) find both halves. It is
// what NSS and OpenSC derive from a public key: the SHA-1 of the RSA
// modulus (big-endian, without leading zeros), of the EC point
// (uncompressed, without its DER wrapping) or of the Ed25519 public key.
// In FIPS 140-only mode, where SHA-1 is refused, it is the first 20 bytes
// of the SHA-256 of the same value.
func keyPairID(key any) []byte {
	var pub []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return keyPairID(&k.PublicKey)
	case *ecdsa.PrivateKey:
		return keyPairID(&k.PublicKey)
	case ed25519.PrivateKey:
		return keyPairID(k.Public())
	case *rsa.PublicKey:
		pub = k.N.Bytes()
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil {
			return nil
		}
		pub = b
	case ed25519.PublicKey:
		pub = k
	case *mldsa.PrivateKey:
		return keyPairID(k.PublicKey())
	case mech.MLKEMDecapsulationKey:
		return keyPairID(mech.MLKEMPublic(k))
	case *mldsa.PublicKey:
		pub = k.Bytes()
	case mech.MLKEMEncapsulationKey:
		pub = k.Bytes()
	default:
		return nil
	}
	if h, err := mech.NewDigest(crypto.SHA1); err == nil {
		h.Write(pub)
		return h.Sum(nil)
	}
	sum := sha256.Sum256(pub)
	return sum[:20]
}

// importedKeyID gives a private or public key made from outside (created
// or unwrapped) without a CKA_ID the id keyPairID derives from its public
// key, so that its other half, imported alike or generated, pairs with it.
// Generated pairs get theirs from withKeyPairID.
func importedKeyID(o *Object, tmpl Template, from origin) {
	if o.class == ck.CKO_SECRET_KEY || from.generated || o.key == nil {
		return
	}
	if _, ok := tmpl.Get(ck.CKA_ID); ok {
		return
	}
	if id := keyPairID(o.key.pub); id != nil {
		o.setAttr(ck.CKA_ID, id)
	}
}

// withKeyPairID gives both templates of a key pair the id keyPairID
// derives, unless either names a CKA_ID (even an empty one): then the
// caller's choice stands.
func withKeyPairID(key any, pubTmpl, privTmpl Template) (Template, Template) {
	if _, ok := pubTmpl.Get(ck.CKA_ID); ok {
		return pubTmpl, privTmpl
	}
	if _, ok := privTmpl.Get(ck.CKA_ID); ok {
		return pubTmpl, privTmpl
	}
	id := keyPairID(key)
	if id == nil {
		return pubTmpl, privTmpl
	}
	return append(slices.Clone(pubTmpl), Bytes(ck.CKA_ID, id)), append(slices.Clone(privTmpl), Bytes(ck.CKA_ID, id))
}
