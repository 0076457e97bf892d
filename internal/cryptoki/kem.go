package cryptoki

import (
	"context"
	"crypto/mlkem"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// KEMSession is the optional capability of a Session to encapsulate and
// decapsulate keys (PKCS#11 v3.2); *client.Session has it. A Session
// without it answers CKR_FUNCTION_NOT_SUPPORTED.
type KEMSession interface {
	EncapsulateKey(ctx context.Context, publicKey client.ObjectID, mech client.Mechanism, tmpl []client.Attribute, opts ...client.CreateOption) (client.ObjectID, []byte, error)
	DecapsulateKey(ctx context.Context, privateKey client.ObjectID, mech client.Mechanism, ciphertext []byte, tmpl []client.Attribute, opts ...client.CreateOption) (client.ObjectID, error)
}

// ciphertextLen is the ML-KEM ciphertext length of a CKA_PARAMETER_SET.
func ciphertextLen(ps uint64) (int, bool) {
	switch ck.ParameterSet(ps) {
	case ck.CKP_ML_KEM_768:
		return mlkem.CiphertextSize768, true
	case ck.CKP_ML_KEM_1024:
		return mlkem.CiphertextSize1024, true
	}
	return 0, false
}

// EncapsulateKey answers C_EncapsulateKey with the two-call convention
// for the ciphertext: with query (pCiphertext NULL) or a buffer shorter
// than the ciphertext it makes no key and answers the length (and
// CKR_BUFFER_TOO_SMALL for a short buffer). Otherwise the ciphertext is
// written to out and n is its length.
func (m *Module) EncapsulateKey(ctx context.Context, h SessionHandle, mech client.Mechanism, pub ObjectHandle, tmpl []client.Attribute, out []byte, query bool) (oh ObjectHandle, n int, rv ck.RV) {
	ss, cs, rv := m.creating(h, tmpl)
	if rv != ck.CKR_OK {
		return 0, 0, rv
	}
	kem, ok := cs.(KEMSession)
	if !ok {
		return 0, 0, ck.CKR_FUNCTION_NOT_SUPPORTED
	}
	if mech.Type != ck.CKM_ML_KEM {
		return 0, 0, ck.CKR_MECHANISM_INVALID
	}
	id, rv := m.object(ss, pub, ck.CKR_KEY_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return 0, 0, rv
	}
	if rv := m.checkKey(ctx, ss, cs, pub, id, OpEncrypt, mech.Type); rv != ck.CKR_OK { // the public half, as for encryption
		return 0, 0, rv
	}
	vals, err := cs.GetAttributes(ctx, id, []ck.AttributeType{ck.CKA_PARAMETER_SET})
	if err != nil || len(vals) != 1 {
		return 0, 0, ck.CKR_KEY_TYPE_INCONSISTENT
	}
	ps, ok := ulongValue(vals[0])
	if !ok {
		return 0, 0, ck.CKR_KEY_TYPE_INCONSISTENT
	}
	need, ok := ciphertextLen(ps)
	if !ok {
		return 0, 0, ck.CKR_KEY_TYPE_INCONSISTENT
	}
	switch {
	case query:
		return 0, need, ck.CKR_OK
	case len(out) < need:
		return 0, need, ck.CKR_BUFFER_TOO_SMALL
	}
	kid, ct, err := kem.EncapsulateKey(ctx, id, mech, tmpl)
	if err != nil {
		return 0, 0, m.code("encapsulate key", err)
	}
	if len(ct) > len(out) { // the HSM's answer disagrees with its parameter set
		return 0, len(ct), ck.CKR_DEVICE_ERROR
	}
	return m.created(ss, kid, tmpl), copy(out, ct), ck.CKR_OK
}

// DecapsulateKey answers C_DecapsulateKey.
func (m *Module) DecapsulateKey(ctx context.Context, h SessionHandle, mech client.Mechanism, priv ObjectHandle, tmpl []client.Attribute, ciphertext []byte) (ObjectHandle, ck.RV) {
	ss, cs, rv := m.creating(h, tmpl)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	kem, ok := cs.(KEMSession)
	if !ok {
		return 0, ck.CKR_FUNCTION_NOT_SUPPORTED
	}
	id, rv := m.object(ss, priv, ck.CKR_KEY_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	if rv := m.checkKey(ctx, ss, cs, priv, id, OpDecrypt, mech.Type); rv != ck.CKR_OK { // the private half, as for decryption
		return 0, rv
	}
	kid, err := kem.DecapsulateKey(ctx, id, mech, ciphertext, tmpl)
	if err != nil {
		return 0, m.code("decapsulate key", err)
	}
	return m.created(ss, kid, tmpl), ck.CKR_OK
}
