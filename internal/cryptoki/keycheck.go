package cryptoki

import (
	"context"
	"encoding/binary"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// C_*Init answers CKR_KEY_TYPE_INCONSISTENT (or CKR_KEY_HANDLE_INVALID for
// an object that is no key) itself, as PKCS#11 asks, instead of leaving it
// to the C_Sign that follows. An object's class and key type never change,
// so the Module learns them once per handle (one attribute read on the
// first use of a found handle; none for keys it made) and Init stays
// without a round trip. The key's usage attributes (CKA_SIGN, ...) can
// change on another HSM, so the HSM checks those at the operation.

// keyShape is an object's class and key type.
type keyShape struct {
	class   ck.ObjectClass
	keyType ck.KeyType
}

// mechanismKeyType is the key type a mechanism works with and whether it
// uses a key pair; ok is false for mechanisms not checked here (the HSM
// checks every mechanism anyway). It follows the HSM's rules
// (internal/hsm, operation.go).
func mechanismKeyType(m ck.MechanismType) (kt ck.KeyType, pair, ok bool) {
	switch m {
	case ck.CKM_AES_ECB, ck.CKM_AES_CBC, ck.CKM_AES_CBC_PAD, ck.CKM_AES_CTR, ck.CKM_AES_GCM, ck.CKM_CLOUDHSM_AES_GCM,
		ck.CKM_AES_KEY_WRAP, ck.CKM_AES_KEY_WRAP_PAD, ck.CKM_AES_CMAC, ck.CKM_AES_CMAC_GENERAL,
		ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD:
		return ck.CKK_AES, false, true
	case ck.CKM_RSA_PKCS, ck.CKM_RSA_PKCS_OAEP, ck.CKM_RSA_PKCS_PSS, ck.CKM_RSA_AES_KEY_WRAP,
		ck.CKM_SHA1_RSA_PKCS, ck.CKM_SHA224_RSA_PKCS, ck.CKM_SHA256_RSA_PKCS, ck.CKM_SHA384_RSA_PKCS, ck.CKM_SHA512_RSA_PKCS,
		ck.CKM_SHA1_RSA_PKCS_PSS, ck.CKM_SHA224_RSA_PKCS_PSS, ck.CKM_SHA256_RSA_PKCS_PSS, ck.CKM_SHA384_RSA_PKCS_PSS, ck.CKM_SHA512_RSA_PKCS_PSS:
		return ck.CKK_RSA, true, true
	case ck.CKM_ECDSA, ck.CKM_ECDSA_SHA1, ck.CKM_ECDSA_SHA224, ck.CKM_ECDSA_SHA256, ck.CKM_ECDSA_SHA384, ck.CKM_ECDSA_SHA512:
		return ck.CKK_EC, true, true
	case ck.CKM_EDDSA:
		return ck.CKK_EC_EDWARDS, true, true
	case ck.CKM_ML_DSA:
		return ck.CKK_ML_DSA, true, true
	case ck.CKM_ML_KEM: // C_EncapsulateKey with the public key, C_DecapsulateKey with the private
		return ck.CKK_ML_KEM, true, true
	case ck.CKM_SHA_1_HMAC, ck.CKM_SHA_1_HMAC_GENERAL, ck.CKM_SHA224_HMAC, ck.CKM_SHA224_HMAC_GENERAL,
		ck.CKM_SHA256_HMAC, ck.CKM_SHA256_HMAC_GENERAL, ck.CKM_SHA384_HMAC, ck.CKM_SHA384_HMAC_GENERAL,
		ck.CKM_SHA512_HMAC, ck.CKM_SHA512_HMAC_GENERAL, ck.CKM_SP800_108_COUNTER_KDF:
		return ck.CKK_GENERIC_SECRET, false, true
	}
	return 0, false, false
}

// checkKey answers whether the object behind oh can do kind with mech.
func (m *Module) checkKey(ctx context.Context, cs Session, oh ObjectHandle, id client.ObjectID, kind OpKind, mech ck.MechanismType) ck.RV {
	want, pair, ok := mechanismKeyType(mech)
	if !ok {
		return ck.CKR_OK
	}
	shape, ok := m.shape(ctx, cs, oh, id)
	if !ok {
		return ck.CKR_OK // unknown here: the HSM decides at the operation
	}
	var wantClass ck.ObjectClass
	switch {
	case !pair:
		wantClass = ck.CKO_SECRET_KEY
	case kind == OpSign || kind == OpDecrypt:
		wantClass = ck.CKO_PRIVATE_KEY
	default:
		wantClass = ck.CKO_PUBLIC_KEY
	}
	switch {
	case shape.class != ck.CKO_SECRET_KEY && shape.class != ck.CKO_PRIVATE_KEY && shape.class != ck.CKO_PUBLIC_KEY:
		return ck.CKR_KEY_HANDLE_INVALID
	case shape.class != wantClass || shape.keyType != want:
		return ck.CKR_KEY_TYPE_INCONSISTENT
	}
	return ck.CKR_OK
}

// shape returns the class and key type of the object behind oh, reading
// them from the HSM the first time.
func (m *Module) shape(ctx context.Context, cs Session, oh ObjectHandle, id client.ObjectID) (keyShape, bool) {
	m.mu.RLock()
	ref, ok := m.objects[oh]
	m.mu.RUnlock()
	if !ok {
		return keyShape{}, false
	}
	if ref.shape != nil {
		return *ref.shape, true
	}
	vals, err := cs.GetAttributes(ctx, id, []ck.AttributeType{ck.CKA_CLASS, ck.CKA_KEY_TYPE})
	if err != nil || len(vals) != 2 {
		return keyShape{}, false
	}
	class, ok1 := ulongValue(vals[0])
	kt, ok2 := ulongValue(vals[1])
	if !ok1 {
		return keyShape{}, false
	}
	s := keyShape{class: ck.ObjectClass(class), keyType: ck.KeyType(kt)}
	if !ok2 { // not a key: it has no CKA_KEY_TYPE
		s.keyType = ^ck.KeyType(0)
	}
	m.setShape(oh, s)
	return s, true
}

// setShape records what the Module knows of oh's object.
func (m *Module) setShape(oh ObjectHandle, s keyShape) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ref, ok := m.objects[oh]; ok {
		ref.shape = &s
		m.objects[oh] = ref
	}
}

// ulongValue reads a CK_ULONG attribute value as the HSM encodes it (8
// bytes, little-endian).
func ulongValue(v client.AttributeValue) (uint64, bool) {
	if v.RV != ck.CKR_OK || len(v.Value) != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(v.Value), true
}
