package bench

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Label is the CKA_LABEL of every object a benchmark makes, so that one
// left behind by a killed run can be found.
const Label = "coffer-bench"

// attr is one template attribute; val is a bool, a uint64, a []byte or a
// string. Each Target encodes it its own way.
type attr struct {
	typ ck.AttributeType
	val any
}

// keyTemplate is what generates a key or key pair: the mechanism and
// templates (pub is nil for a secret key).
type keyTemplate struct {
	mech      ck.MechanismType
	pub, priv []attr
}

// template returns the generation of spec; token makes token objects.
func template(spec KeySpec, token bool) (keyTemplate, error) {
	common := []attr{{ck.CKA_TOKEN, token}, {ck.CKA_LABEL, Label}}
	private := append([]attr{{ck.CKA_PRIVATE, true}, {ck.CKA_SENSITIVE, true}, {ck.CKA_EXTRACTABLE, false}}, common...)
	switch spec.Alg {
	case KeyAES:
		return keyTemplate{mech: ck.CKM_AES_KEY_GEN, priv: append([]attr{
			{ck.CKA_CLASS, uint64(ck.CKO_SECRET_KEY)}, {ck.CKA_KEY_TYPE, uint64(ck.CKK_AES)},
			{ck.CKA_VALUE_LEN, uint64(spec.Bits / 8)}, {ck.CKA_ENCRYPT, true}, {ck.CKA_DECRYPT, true}}, private...)}, nil
	case KeyGenericSecret:
		return keyTemplate{mech: ck.CKM_GENERIC_SECRET_KEY_GEN, priv: append([]attr{
			{ck.CKA_CLASS, uint64(ck.CKO_SECRET_KEY)}, {ck.CKA_KEY_TYPE, uint64(ck.CKK_GENERIC_SECRET)},
			{ck.CKA_VALUE_LEN, uint64(spec.Bits / 8)}, {ck.CKA_SIGN, true}, {ck.CKA_VERIFY, true}}, private...)}, nil
	case KeyRSA:
		return keyTemplate{mech: ck.CKM_RSA_PKCS_KEY_PAIR_GEN,
			pub: append([]attr{{ck.CKA_MODULUS_BITS, uint64(spec.Bits)}, {ck.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}},
				{ck.CKA_VERIFY, true}}, common...),
			priv: append([]attr{{ck.CKA_SIGN, true}}, private...)}, nil
	case KeyEC, KeyEd25519:
		mech := ck.CKM_EC_KEY_PAIR_GEN
		if spec.Alg == KeyEd25519 {
			mech = ck.CKM_EC_EDWARDS_KEY_PAIR_GEN
		}
		return keyTemplate{mech: mech,
			pub:  append([]attr{{ck.CKA_EC_PARAMS, spec.EC}, {ck.CKA_VERIFY, true}}, common...),
			priv: append([]attr{{ck.CKA_SIGN, true}}, private...)}, nil
	}
	return keyTemplate{}, fmt.Errorf("no template for key algorithm %d", spec.Alg)
}

// params are the parameters of one sign or encrypt call.
type params struct {
	iv      []byte // AES-GCM (12 bytes) and AES-CBC (16)
	tagBits uint   // AES-GCM
	pss     bool   // RSA-PSS: SHA-256, MGF1-SHA-256, 32-byte salt
}

// ivSource gives the IVs of one key: AES-GCM IVs are a random prefix and a
// counter, so no two calls with the key share one, whatever the threads;
// AES-CBC IVs are random.
type ivSource struct {
	prefix [4]byte
	next   atomic.Uint64
}

func newIVSource() *ivSource {
	s := new(ivSource)
	_, _ = rand.Read(s.prefix[:]) // crypto/rand.Read does not fail
	return s
}

// params returns the parameters of one call of op.
func (s *ivSource) params(op Op) params {
	switch op.Mech {
	case ck.CKM_AES_GCM:
		iv := binary.BigEndian.AppendUint64(append(make([]byte, 0, 12), s.prefix[:]...), s.next.Add(1))
		return params{iv: iv, tagBits: 128}
	case ck.CKM_AES_CBC:
		iv := make([]byte, 16)
		_, _ = rand.Read(iv)
		return params{iv: iv}
	case ck.CKM_SHA256_RSA_PKCS_PSS:
		return params{pss: true}
	}
	return params{}
}
