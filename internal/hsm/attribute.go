package hsm

import (
	"bytes"
	"encoding/binary"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Attribute is one PKCS#11 attribute in the device's canonical encoding:
// CK_BBOOL as one byte (0 or 1), CK_ULONG as eight bytes little-endian,
// everything else as its bytes. The PKCS#11 module converts CK_ULONG to the
// host's width at its boundary.
type Attribute struct {
	Type  ck.AttributeType
	Value []byte
}

// Template is a list of attributes, as PKCS#11 passes them.
type Template []Attribute

// Bool, Ulong, Bytes and String build attributes in the canonical encoding.
func Bool(t ck.AttributeType, v bool) Attribute {
	if v {
		return Attribute{t, []byte{1}}
	}
	return Attribute{t, []byte{0}}
}

func Ulong(t ck.AttributeType, v uint) Attribute {
	return Attribute{t, binary.LittleEndian.AppendUint64(nil, uint64(v))}
}

func Bytes(t ck.AttributeType, v []byte) Attribute { return Attribute{t, bytes.Clone(v)} }

// Unavailable is CK_UNAVAILABLE_INFORMATION, the value of a CK_ULONG attribute
// that has no meaningful value (e.g. CKA_KEY_GEN_MECHANISM of an imported key).
const Unavailable = ^uint(0)

// attrKind is how an attribute's value is encoded.
type attrKind uint8

const (
	kindBytes attrKind = iota
	kindBool
	kindUlong
)

var boolAttrs = []ck.AttributeType{
	ck.CKA_TOKEN, ck.CKA_PRIVATE, ck.CKA_MODIFIABLE, ck.CKA_COPYABLE, ck.CKA_DESTROYABLE,
	ck.CKA_SENSITIVE, ck.CKA_EXTRACTABLE, ck.CKA_ENCRYPT, ck.CKA_DECRYPT, ck.CKA_SIGN,
	ck.CKA_VERIFY, ck.CKA_SIGN_RECOVER, ck.CKA_VERIFY_RECOVER, ck.CKA_WRAP, ck.CKA_UNWRAP,
	ck.CKA_DERIVE, ck.CKA_TRUSTED, ck.CKA_WRAP_WITH_TRUSTED, ck.CKA_LOCAL,
	ck.CKA_NEVER_EXTRACTABLE, ck.CKA_ALWAYS_SENSITIVE, ck.CKA_ALWAYS_AUTHENTICATE,
	ck.CKA_ENCAPSULATE, ck.CKA_DECAPSULATE,
}

// flag is the bit of a boolean attribute in Object.flags.
type flag uint32

func flagOf(t ck.AttributeType) (flag, bool) {
	for i, a := range boolAttrs {
		if a == t {
			return 1 << i, true
		}
	}
	return 0, false
}

// The flags the hot path reads.
var (
	fToken, _            = flagOf(ck.CKA_TOKEN)
	fPrivate, _          = flagOf(ck.CKA_PRIVATE)
	fModifiable, _       = flagOf(ck.CKA_MODIFIABLE)
	fDestroyable, _      = flagOf(ck.CKA_DESTROYABLE)
	fCopyable, _         = flagOf(ck.CKA_COPYABLE)
	fSensitive, _        = flagOf(ck.CKA_SENSITIVE)
	fExtractable, _      = flagOf(ck.CKA_EXTRACTABLE)
	fEncrypt, _          = flagOf(ck.CKA_ENCRYPT)
	fDecrypt, _          = flagOf(ck.CKA_DECRYPT)
	fSign, _             = flagOf(ck.CKA_SIGN)
	fVerify, _           = flagOf(ck.CKA_VERIFY)
	fWrap, _             = flagOf(ck.CKA_WRAP)
	fUnwrap, _           = flagOf(ck.CKA_UNWRAP)
	fDerive, _           = flagOf(ck.CKA_DERIVE)
	fTrusted, _          = flagOf(ck.CKA_TRUSTED)
	fWrapWithTrusted, _  = flagOf(ck.CKA_WRAP_WITH_TRUSTED)
	fLocal, _            = flagOf(ck.CKA_LOCAL)
	fNeverExtractable, _ = flagOf(ck.CKA_NEVER_EXTRACTABLE)
	fAlwaysSensitive, _  = flagOf(ck.CKA_ALWAYS_SENSITIVE)
	fEncapsulate, _      = flagOf(ck.CKA_ENCAPSULATE)
	fDecapsulate, _      = flagOf(ck.CKA_DECAPSULATE)
)

func kindOf(t ck.AttributeType) attrKind {
	if _, ok := flagOf(t); ok {
		return kindBool
	}
	switch t {
	case ck.CKA_CLASS, ck.CKA_KEY_TYPE, ck.CKA_VALUE_LEN, ck.CKA_MODULUS_BITS,
		ck.CKA_KEY_GEN_MECHANISM, ck.CKA_CERTIFICATE_TYPE, ck.CKA_CERTIFICATE_CATEGORY,
		ck.CKA_JAVA_MIDP_SECURITY_DOMAIN, ck.CKA_NAME_HASH_ALGORITHM, ck.CKA_PARAMETER_SET:
		return kindUlong
	}
	return kindBytes
}

// checkValue reports whether v is a well-formed value for attribute t.
func checkValue(t ck.AttributeType, v []byte) bool {
	switch kindOf(t) {
	case kindBool:
		return len(v) == 1 && v[0] <= 1
	case kindUlong:
		return len(v) == 8
	}
	return true
}

func decodeBool(v []byte) bool { return len(v) == 1 && v[0] == 1 }

func decodeUlong(v []byte) uint {
	if len(v) != 8 {
		return Unavailable
	}
	return uint(binary.LittleEndian.Uint64(v))
}

// Get returns the value of t in the template.
func (tm Template) Get(t ck.AttributeType) ([]byte, bool) {
	for _, a := range tm {
		if a.Type == t {
			return a.Value, true
		}
	}
	return nil, false
}

// sensitiveAttrs are the attributes that hold key material: never stored in
// an object's public attribute map, readable only from an extractable,
// non-sensitive key.
var sensitiveAttrs = map[ck.AttributeType]bool{
	ck.CKA_VALUE:            true, // of secret and private keys
	ck.CKA_PRIVATE_EXPONENT: true,
	ck.CKA_PRIME_1:          true,
	ck.CKA_PRIME_2:          true,
	ck.CKA_EXPONENT_1:       true,
	ck.CKA_EXPONENT_2:       true,
	ck.CKA_COEFFICIENT:      true,
	ck.CKA_SEED:             true, // of ML-DSA and ML-KEM private keys
}

// readOnlyAfterCreate lists the attributes C_SetAttributeValue may never
// change (PKCS#11 v3.0 §4.4 and the key tables). CKA_SENSITIVE,
// CKA_EXTRACTABLE and CKA_WRAP_WITH_TRUSTED may change only one way; see
// Object.set.
var readOnlyAfterCreate = map[ck.AttributeType]bool{
	ck.CKA_CLASS: true, ck.CKA_KEY_TYPE: true, ck.CKA_TOKEN: true, ck.CKA_PRIVATE: true,
	ck.CKA_MODIFIABLE: true, ck.CKA_LOCAL: true, ck.CKA_ALWAYS_SENSITIVE: true,
	ck.CKA_NEVER_EXTRACTABLE: true, ck.CKA_KEY_GEN_MECHANISM: true, ck.CKA_VALUE_LEN: true,
	ck.CKA_MODULUS: true, ck.CKA_MODULUS_BITS: true, ck.CKA_PUBLIC_EXPONENT: true,
	ck.CKA_EC_PARAMS: true, ck.CKA_EC_POINT: true, ck.CKA_VALUE: true,
	ck.CKA_PRIVATE_EXPONENT: true, ck.CKA_PRIME_1: true, ck.CKA_PRIME_2: true,
	ck.CKA_EXPONENT_1: true, ck.CKA_EXPONENT_2: true, ck.CKA_COEFFICIENT: true,
	ck.CKA_CERTIFICATE_TYPE: true, ck.CKA_DESTROYABLE: true, ck.CKA_COPYABLE: true,
	ck.CKA_PARAMETER_SET: true, ck.CKA_SEED: true,
}

// computedAttrs may not appear in a creation template: the device sets them.
var computedAttrs = map[ck.AttributeType]bool{
	ck.CKA_LOCAL: true, ck.CKA_ALWAYS_SENSITIVE: true, ck.CKA_NEVER_EXTRACTABLE: true,
	ck.CKA_KEY_GEN_MECHANISM: true,
}

// validAttrs lists, per object class, the attributes an object may carry
// beyond key material. An attribute outside it in a template is
// CKR_ATTRIBUTE_TYPE_INVALID.
var commonAttrs = []ck.AttributeType{
	ck.CKA_CLASS, ck.CKA_TOKEN, ck.CKA_PRIVATE, ck.CKA_MODIFIABLE, ck.CKA_COPYABLE,
	ck.CKA_DESTROYABLE, ck.CKA_LABEL,
}

var keyAttrs = []ck.AttributeType{
	ck.CKA_KEY_TYPE, ck.CKA_ID, ck.CKA_START_DATE, ck.CKA_END_DATE, ck.CKA_DERIVE,
	ck.CKA_LOCAL, ck.CKA_KEY_GEN_MECHANISM, ck.CKA_ALLOWED_MECHANISMS,
}

var classAttrs = map[ck.ObjectClass][]ck.AttributeType{
	ck.CKO_SECRET_KEY: {
		ck.CKA_SENSITIVE, ck.CKA_ENCRYPT, ck.CKA_DECRYPT, ck.CKA_SIGN, ck.CKA_VERIFY, ck.CKA_WRAP,
		ck.CKA_UNWRAP, ck.CKA_EXTRACTABLE, ck.CKA_ALWAYS_SENSITIVE, ck.CKA_NEVER_EXTRACTABLE,
		ck.CKA_CHECK_VALUE, ck.CKA_WRAP_WITH_TRUSTED, ck.CKA_TRUSTED, ck.CKA_VALUE, ck.CKA_VALUE_LEN,
	},
	ck.CKO_PRIVATE_KEY: {
		ck.CKA_SUBJECT, ck.CKA_SENSITIVE, ck.CKA_DECRYPT, ck.CKA_SIGN, ck.CKA_SIGN_RECOVER,
		ck.CKA_UNWRAP, ck.CKA_EXTRACTABLE, ck.CKA_ALWAYS_SENSITIVE, ck.CKA_NEVER_EXTRACTABLE,
		ck.CKA_WRAP_WITH_TRUSTED, ck.CKA_ALWAYS_AUTHENTICATE, ck.CKA_PUBLIC_KEY_INFO,
		ck.CKA_MODULUS, ck.CKA_PUBLIC_EXPONENT, ck.CKA_PRIVATE_EXPONENT, ck.CKA_PRIME_1,
		ck.CKA_PRIME_2, ck.CKA_EXPONENT_1, ck.CKA_EXPONENT_2, ck.CKA_COEFFICIENT,
		ck.CKA_EC_PARAMS, ck.CKA_EC_POINT, ck.CKA_VALUE,
		ck.CKA_PARAMETER_SET, ck.CKA_SEED, ck.CKA_DECAPSULATE,
	},
	ck.CKO_PUBLIC_KEY: {
		ck.CKA_SUBJECT, ck.CKA_ENCRYPT, ck.CKA_VERIFY, ck.CKA_VERIFY_RECOVER, ck.CKA_WRAP,
		ck.CKA_TRUSTED, ck.CKA_PUBLIC_KEY_INFO, ck.CKA_MODULUS, ck.CKA_MODULUS_BITS,
		ck.CKA_PUBLIC_EXPONENT, ck.CKA_EC_PARAMS, ck.CKA_EC_POINT,
		ck.CKA_PARAMETER_SET, ck.CKA_VALUE, ck.CKA_ENCAPSULATE,
	},
	ck.CKO_DATA: {ck.CKA_APPLICATION, ck.CKA_OBJECT_ID, ck.CKA_VALUE},
	ck.CKO_CERTIFICATE: {
		ck.CKA_CERTIFICATE_TYPE, ck.CKA_TRUSTED, ck.CKA_CERTIFICATE_CATEGORY, ck.CKA_CHECK_VALUE,
		ck.CKA_START_DATE, ck.CKA_END_DATE, ck.CKA_PUBLIC_KEY_INFO, ck.CKA_SUBJECT, ck.CKA_ID,
		ck.CKA_ISSUER, ck.CKA_SERIAL_NUMBER, ck.CKA_VALUE, ck.CKA_URL,
		ck.CKA_HASH_OF_SUBJECT_PUBLIC_KEY, ck.CKA_HASH_OF_ISSUER_PUBLIC_KEY,
		ck.CKA_JAVA_MIDP_SECURITY_DOMAIN, ck.CKA_NAME_HASH_ALGORITHM,
	},
}

func validFor(class ck.ObjectClass, t ck.AttributeType) bool {
	for _, a := range commonAttrs {
		if a == t {
			return true
		}
	}
	extra, ok := classAttrs[class]
	if !ok {
		return false
	}
	if class == ck.CKO_SECRET_KEY || class == ck.CKO_PRIVATE_KEY || class == ck.CKO_PUBLIC_KEY {
		for _, a := range keyAttrs {
			if a == t {
				return true
			}
		}
	}
	for _, a := range extra {
		if a == t {
			return true
		}
	}
	return false
}
