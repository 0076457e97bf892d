package cli

import (
	"bytes"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// attrKind is how a key attribute's value is written on the command line and
// printed.
type attrKind uint8

const (
	kindString  attrKind = iota + 1 // text
	kindBool                        // true or false
	kindHex                         // bytes as hex, 0x optional
	kindUlong                       // a number
	kindClass                       // secret-key, public-key, private-key
	kindKeyType                     // aes, generic-secret, rsa, ec, ed25519
	kindCurve                       // secp256r1, secp384r1, secp521r1, ed25519
)

// AttributeDef is a key attribute as the CLI names it (CloudHSM's names).
type AttributeDef struct {
	Name string
	Type ck.AttributeType
	kind attrKind
	// Values describes what the attribute takes, for the docs.
	Values string
}

// AttributeDefs lists the key attributes the CLI knows, in the order they
// are printed.
func AttributeDefs() []AttributeDef {
	b := func(name string, t ck.AttributeType) AttributeDef {
		return AttributeDef{Name: name, Type: t, kind: kindBool, Values: "true or false"}
	}
	return []AttributeDef{
		{Name: "label", Type: ck.CKA_LABEL, kind: kindString, Values: "text"},
		{Name: "id", Type: ck.CKA_ID, kind: kindHex, Values: "bytes in hex, e.g. 0x0102"},
		{Name: "class", Type: ck.CKA_CLASS, kind: kindClass, Values: "secret-key, public-key, private-key"},
		{Name: "key-type", Type: ck.CKA_KEY_TYPE, kind: kindKeyType, Values: "aes, generic-secret, rsa, ec, ed25519, ml-dsa, ml-kem"},
		b("token", ck.CKA_TOKEN),
		b("private", ck.CKA_PRIVATE),
		b("modifiable", ck.CKA_MODIFIABLE),
		b("destroyable", ck.CKA_DESTROYABLE),
		b("sensitive", ck.CKA_SENSITIVE),
		b("extractable", ck.CKA_EXTRACTABLE),
		b("encrypt", ck.CKA_ENCRYPT),
		b("decrypt", ck.CKA_DECRYPT),
		b("sign", ck.CKA_SIGN),
		b("verify", ck.CKA_VERIFY),
		b("wrap", ck.CKA_WRAP),
		b("unwrap", ck.CKA_UNWRAP),
		b("derive", ck.CKA_DERIVE),
		b("trusted", ck.CKA_TRUSTED),
		b("wrap-with-trusted", ck.CKA_WRAP_WITH_TRUSTED),
		b("local", ck.CKA_LOCAL),
		b("never-extractable", ck.CKA_NEVER_EXTRACTABLE),
		b("always-sensitive", ck.CKA_ALWAYS_SENSITIVE),
		b("encapsulate", ck.CKA_ENCAPSULATE),
		b("decapsulate", ck.CKA_DECAPSULATE),
		{Name: "key-length-bytes", Type: ck.CKA_VALUE_LEN, kind: kindUlong, Values: "a number (secret keys)"},
		{Name: "modulus-size-bits", Type: ck.CKA_MODULUS_BITS, kind: kindUlong, Values: "a number (RSA public keys)"},
		{Name: "public-exponent", Type: ck.CKA_PUBLIC_EXPONENT, kind: kindHex, Values: "hex (RSA keys)"},
		{Name: "modulus", Type: ck.CKA_MODULUS, kind: kindHex, Values: "hex (RSA keys)"},
		{Name: "curve", Type: ck.CKA_EC_PARAMS, kind: kindCurve, Values: "secp256r1 (prime256v1), secp384r1, secp521r1, ed25519"},
		{Name: "ec-point", Type: ck.CKA_EC_POINT, kind: kindHex, Values: "hex (EC and Ed25519 keys)"},
		{Name: "check-value", Type: ck.CKA_CHECK_VALUE, kind: kindHex, Values: "hex"},
		{Name: "parameter-set", Type: ck.CKA_PARAMETER_SET, kind: kindUlong, Values: "a number: CKP_ML_DSA_44..87 are 1..3, CKP_ML_KEM_768 and _1024 are 2 and 3"},
	}
}

// PKCS11Name is the attribute's PKCS#11 name.
func (d AttributeDef) PKCS11Name() string {
	if d.Type == ck.CKA_EC_PARAMS {
		return "CKA_EC_PARAMS" // the same value as CKA_ECDSA_PARAMS, its older name
	}
	return d.Type.String()
}

// LookupAttribute finds an attribute by its CLI name, with or without the
// "attr." prefix.
func LookupAttribute(name string) (AttributeDef, bool) {
	name = strings.TrimPrefix(name, "attr.")
	for _, d := range AttributeDefs() {
		if d.Name == name {
			return d, true
		}
	}
	return AttributeDef{}, false
}

// ParseAttribute reads NAME=VALUE (NAME with or without "attr.") into a
// template attribute.
func ParseAttribute(s string) (client.Attribute, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return client.Attribute{}, Usagef("attribute %q: want NAME=VALUE, e.g. extractable=false", s)
	}
	d, ok := LookupAttribute(name)
	if !ok {
		return client.Attribute{}, Usagef("unknown attribute %q: docs/cli.md lists the attribute names", name)
	}
	v, err := d.Encode(value)
	if err != nil {
		return client.Attribute{}, Usagef("attribute %s=%q: %v", d.Name, value, err)
	}
	return client.Attribute{Type: d.Type, Value: v}, nil
}

// ParseAttributes reads a list of NAME=VALUE.
func ParseAttributes(items []string) ([]client.Attribute, error) {
	out := make([]client.Attribute, 0, len(items))
	for _, s := range items {
		a, err := ParseAttribute(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Ulong is a CK_ULONG attribute in the HSM's encoding (eight bytes,
// little-endian).
func Ulong(t ck.AttributeType, v uint64) client.Attribute {
	return client.Attribute{Type: t, Value: binary.LittleEndian.AppendUint64(nil, v)}
}

// String is a text attribute.
func String(t ck.AttributeType, s string) client.Attribute {
	return client.Attribute{Type: t, Value: []byte(s)}
}

// Encode writes value in the HSM's encoding of the attribute.
func (d AttributeDef) Encode(value string) ([]byte, error) {
	switch d.kind {
	case kindString:
		return []byte(value), nil
	case kindBool:
		v, err := strconv.ParseBool(value)
		if err != nil {
			return nil, fmt.Errorf("want true or false")
		}
		if v {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case kindHex:
		return parseHex(value)
	case kindUlong:
		v, err := strconv.ParseUint(value, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("want a number")
		}
		return binary.LittleEndian.AppendUint64(nil, v), nil
	case kindClass:
		for c, n := range classNames() {
			if n == value {
				return binary.LittleEndian.AppendUint64(nil, uint64(c)), nil
			}
		}
		return nil, fmt.Errorf("want secret-key, public-key or private-key")
	case kindKeyType:
		for k, n := range keyTypeNames() {
			if n == value {
				return binary.LittleEndian.AppendUint64(nil, uint64(k)), nil
			}
		}
		return nil, fmt.Errorf("want aes, generic-secret, rsa, ec, ed25519, ml-dsa or ml-kem")
	case kindCurve:
		return CurveParams(value)
	}
	return nil, fmt.Errorf("cannot be set")
}

// Decode turns a value the HSM returned into what the CLI prints: a string,
// a bool or a number.
func (d AttributeDef) Decode(v []byte) any {
	switch d.kind {
	case kindString:
		return string(v)
	case kindBool:
		return len(v) == 1 && v[0] == 1
	case kindUlong:
		if len(v) == 8 {
			return binary.LittleEndian.Uint64(v)
		}
	case kindClass:
		if len(v) == 8 {
			if n, ok := classNames()[ck.ObjectClass(binary.LittleEndian.Uint64(v))]; ok {
				return n
			}
		}
	case kindKeyType:
		if len(v) == 8 {
			if n, ok := keyTypeNames()[ck.KeyType(binary.LittleEndian.Uint64(v))]; ok {
				return n
			}
		}
	case kindCurve:
		if n := CurveName(v); n != "" {
			return n
		}
	}
	return hexString(v)
}

func hexString(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	return "0x" + hex.EncodeToString(v)
}

func parseHex(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("want hex digits")
	}
	return b, nil
}

// ClassName and KeyTypeName name classes and key types as the CLI does.
func ClassName(c ck.ObjectClass) string {
	if n, ok := classNames()[c]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", uint(c))
}

func KeyTypeName(k ck.KeyType) string {
	if n, ok := keyTypeNames()[k]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", uint(k))
}

func classNames() map[ck.ObjectClass]string {
	return map[ck.ObjectClass]string{
		ck.CKO_SECRET_KEY: "secret-key", ck.CKO_PUBLIC_KEY: "public-key", ck.CKO_PRIVATE_KEY: "private-key",
		ck.CKO_DATA: "data", ck.CKO_CERTIFICATE: "certificate",
	}
}

func keyTypeNames() map[ck.KeyType]string {
	return map[ck.KeyType]string{
		ck.CKK_AES: "aes", ck.CKK_GENERIC_SECRET: "generic-secret", ck.CKK_RSA: "rsa", ck.CKK_EC: "ec",
		ck.CKK_EC_EDWARDS: "ed25519", ck.CKK_ML_DSA: "ml-dsa", ck.CKK_ML_KEM: "ml-kem",
	}
}

// curveOIDs are the curves' object identifiers, by CLI name.
func curveOIDs() map[string]asn1.ObjectIdentifier {
	return map[string]asn1.ObjectIdentifier{
		"secp256r1": {1, 2, 840, 10045, 3, 1, 7},
		"secp384r1": {1, 3, 132, 0, 34},
		"secp521r1": {1, 3, 132, 0, 35},
		"ed25519":   {1, 3, 101, 112},
	}
}

// CurveParams is CKA_EC_PARAMS (the DER of the curve's OID) for a curve name;
// prime256v1 is another name of secp256r1.
func CurveParams(name string) ([]byte, error) {
	if name == "prime256v1" {
		name = "secp256r1"
	}
	oid, ok := curveOIDs()[name]
	if !ok {
		return nil, fmt.Errorf("unknown curve %q: want secp256r1 (prime256v1), secp384r1, secp521r1 or ed25519", name)
	}
	return asn1.Marshal(oid)
}

// CurveName names the curve of CKA_EC_PARAMS, or returns "".
func CurveName(params []byte) string {
	for name, oid := range curveOIDs() {
		if b, err := asn1.Marshal(oid); err == nil && bytes.Equal(b, params) {
			return name
		}
	}
	if string(params) == "\x13\x0cedwards25519" {
		return "ed25519"
	}
	return ""
}

// AttrValue is one attribute of a key as printed.
type AttrValue struct {
	Name  string
	Value any
}

// Attributes are a key's attributes, printed in AttributeDefs order as one
// JSON object.
type Attributes []AttrValue

// MarshalJSON writes the attributes as an object, in order.
func (a Attributes) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, v := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(v.Name)
		val, err := json.Marshal(v.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns the value of the attribute named name.
func (a Attributes) Get(name string) (any, bool) {
	for _, v := range a {
		if v.Name == name {
			return v.Value, true
		}
	}
	return nil, false
}
