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

// checkKey answers whether the object behind oh can do kind with mech, by
// the key columns of the HSM's mechanism table (client.MechanismInfo's
// KeyType and KeyUse). A mechanism the slot's HSMs do not list, or list
// without a key, is left to the HSM.
func (m *Module) checkKey(ctx context.Context, ss *session, cs Session, oh ObjectHandle, id client.ObjectID, kind OpKind, mech ck.MechanismType) ck.RV {
	mi, rv := m.MechanismInfo(ctx, ss.slot.id, mech)
	if rv != ck.CKR_OK || mi.KeyUse == client.NoKey {
		return ck.CKR_OK
	}
	shape, ok := m.shape(ctx, cs, oh, id)
	if !ok {
		return ck.CKR_OK // unknown here: the HSM decides at the operation
	}
	return shape.fits(mi, kind)
}

// fits answers whether a key of shape s can do kind with the mechanism mi:
// CKR_KEY_HANDLE_INVALID for an object that is no key,
// CKR_KEY_TYPE_INCONSISTENT for a key of another class or type.
func (s keyShape) fits(mi client.MechanismInfo, kind OpKind) ck.RV {
	var wantClass ck.ObjectClass
	switch {
	case mi.KeyUse == client.SecretKey:
		wantClass = ck.CKO_SECRET_KEY
	case kind == OpSign || kind == OpDecrypt: // decryption: C_DecapsulateKey too
		wantClass = ck.CKO_PRIVATE_KEY
	default:
		wantClass = ck.CKO_PUBLIC_KEY
	}
	switch {
	case s.class != ck.CKO_SECRET_KEY && s.class != ck.CKO_PRIVATE_KEY && s.class != ck.CKO_PUBLIC_KEY:
		return ck.CKR_KEY_HANDLE_INVALID
	case s.class != wantClass || s.keyType != mi.KeyType:
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
