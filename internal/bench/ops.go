package bench

import (
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Kind is what an operation does.
type Kind int

const (
	KindSign       Kind = iota + 1 // sign (or MAC) Data bytes with the op's key
	KindEncrypt                    // encrypt Data bytes with the op's key
	KindKeyGen                     // generate a secret key
	KindKeyPairGen                 // generate a key pair
)

// KeyAlg is the kind of key an operation uses or makes.
type KeyAlg int

const (
	KeyRSA KeyAlg = iota + 1
	KeyEC
	KeyEd25519
	KeyAES
	KeyGenericSecret // HMAC
)

// KeySpec is a key: its algorithm and size.
type KeySpec struct {
	Alg  KeyAlg
	Bits int    // RSA modulus; AES and generic secret: key length in bits
	EC   []byte // KeyEC and KeyEd25519: CKA_EC_PARAMS (the DER of the curve's OID)
}

// Token says whether the objects an operation makes are token objects.
type Token int

const (
	TokenAsAsked Token = iota // the run's --token-keys
	TokenNever                // always session objects
	TokenAlways               // always token objects
)

// Op is one operation a benchmark runs over and over.
type Op struct {
	Name string
	Desc string
	Kind Kind
	Key  KeySpec          // the key it uses (sign, encrypt) or makes (generation)
	Mech ck.MechanismType // the mechanism of the operation or of the generation
	Data int              // bytes signed or encrypted
	// Token is for generations: whether the keys made are token objects.
	Token Token
}

// Keys reports which objects the op's cells use or make with tokenKeys
// asked for: "token" or "session".
func (o Op) Keys(tokenKeys bool) string {
	if o.Token == TokenAlways || o.Token == TokenAsAsked && tokenKeys {
		return "token"
	}
	return "session"
}

func curve(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err) // a constant OID
	}
	return b
}

var (
	p256Params    = curve(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	p384Params    = curve(asn1.ObjectIdentifier{1, 3, 132, 0, 34})
	ed25519Params = curve(asn1.ObjectIdentifier{1, 3, 101, 112})
)

// Ops are the operations a benchmark can run, in the order they run.
func Ops() []Op {
	rsa2048 := KeySpec{Alg: KeyRSA, Bits: 2048}
	aes256 := KeySpec{Alg: KeyAES, Bits: 256}
	return []Op{
		{Name: "rsa2048-sign", Desc: "RSA-2048 PKCS #1 v1.5 signature of 32 bytes (CKM_SHA256_RSA_PKCS)", Kind: KindSign, Key: rsa2048, Mech: ck.CKM_SHA256_RSA_PKCS, Data: 32},
		{Name: "rsa3072-sign", Desc: "RSA-3072 PKCS #1 v1.5 signature of 32 bytes (CKM_SHA256_RSA_PKCS)", Kind: KindSign, Key: KeySpec{Alg: KeyRSA, Bits: 3072}, Mech: ck.CKM_SHA256_RSA_PKCS, Data: 32},
		{Name: "rsa2048-pss", Desc: "RSA-2048 PSS signature of 32 bytes, SHA-256, MGF1-SHA-256, 32-byte salt (CKM_SHA256_RSA_PKCS_PSS)", Kind: KindSign, Key: rsa2048, Mech: ck.CKM_SHA256_RSA_PKCS_PSS, Data: 32},
		{Name: "ecdsa-p256", Desc: "ECDSA P-256 signature of a 32-byte digest (CKM_ECDSA)", Kind: KindSign, Key: KeySpec{Alg: KeyEC, Bits: 256, EC: p256Params}, Mech: ck.CKM_ECDSA, Data: 32},
		{Name: "ecdsa-p384", Desc: "ECDSA P-384 signature of a 48-byte digest (CKM_ECDSA)", Kind: KindSign, Key: KeySpec{Alg: KeyEC, Bits: 384, EC: p384Params}, Mech: ck.CKM_ECDSA, Data: 48},
		{Name: "ed25519", Desc: "Ed25519 signature of 32 bytes (CKM_EDDSA)", Kind: KindSign, Key: KeySpec{Alg: KeyEd25519, Bits: 256, EC: ed25519Params}, Mech: ck.CKM_EDDSA, Data: 32},
		{Name: "aes256-gcm-1k", Desc: "AES-256-GCM encryption of 1 KiB, 12-byte IV, 16-byte tag (CKM_AES_GCM)", Kind: KindEncrypt, Key: aes256, Mech: ck.CKM_AES_GCM, Data: 1 << 10},
		{Name: "aes256-gcm-64k", Desc: "AES-256-GCM encryption of 64 KiB (CKM_AES_GCM)", Kind: KindEncrypt, Key: aes256, Mech: ck.CKM_AES_GCM, Data: 64 << 10},
		{Name: "aes256-cbc-1k", Desc: "AES-256-CBC encryption of 1 KiB, no padding (CKM_AES_CBC)", Kind: KindEncrypt, Key: aes256, Mech: ck.CKM_AES_CBC, Data: 1 << 10},
		{Name: "aes256-cbc-64k", Desc: "AES-256-CBC encryption of 64 KiB (CKM_AES_CBC)", Kind: KindEncrypt, Key: aes256, Mech: ck.CKM_AES_CBC, Data: 64 << 10},
		{Name: "hmac-sha256-1k", Desc: "HMAC-SHA256 of 1 KiB with a 32-byte generic secret (CKM_SHA256_HMAC)", Kind: KindSign, Key: KeySpec{Alg: KeyGenericSecret, Bits: 256}, Mech: ck.CKM_SHA256_HMAC, Data: 1 << 10},
		{Name: "aes-keygen-session", Desc: "AES-256 session key generation (CKM_AES_KEY_GEN)", Kind: KindKeyGen, Key: aes256, Mech: ck.CKM_AES_KEY_GEN, Token: TokenNever},
		{Name: "aes-keygen-token", Desc: "AES-256 token key generation, stored durably (CKM_AES_KEY_GEN)", Kind: KindKeyGen, Key: aes256, Mech: ck.CKM_AES_KEY_GEN, Token: TokenAlways},
		{Name: "rsa2048-keygen", Desc: "RSA-2048 key pair generation (CKM_RSA_PKCS_KEY_PAIR_GEN)", Kind: KindKeyPairGen, Key: rsa2048, Mech: ck.CKM_RSA_PKCS_KEY_PAIR_GEN},
	}
}

// DefaultOps are the operations run without --ops: every one but RSA key
// pair generation, whose few slow operations per cell say little.
func DefaultOps() []string {
	var names []string
	for _, o := range Ops() {
		if o.Kind != KindKeyPairGen {
			names = append(names, o.Name)
		}
	}
	return names
}

// OpNames are the names of every operation.
func OpNames() []string {
	var names []string
	for _, o := range Ops() {
		names = append(names, o.Name)
	}
	return names
}

// ParseOps finds the operations named, in the order given; "all" names
// every one.
func ParseOps(names []string) ([]Op, error) {
	all := Ops()
	var out []Op
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "all" {
			return all, nil
		}
		i := slices.IndexFunc(all, func(o Op) bool { return o.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown operation %q: want all or one of %s", n, strings.Join(OpNames(), ", "))
		}
		if slices.ContainsFunc(out, func(o Op) bool { return o.Name == n }) {
			return nil, fmt.Errorf("operation %q named twice", n)
		}
		out = append(out, all[i])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no operation: want all or one of %s", strings.Join(OpNames(), ", "))
	}
	return out, nil
}
