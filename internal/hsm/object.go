package hsm

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// ObjectID names an object for its whole life, the same on every HSM of a
// cluster. Zero is never a valid id.
type ObjectID uint64

func (id ObjectID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// ParseObjectID is the inverse of ObjectID.String.
func ParseObjectID(s string) (ObjectID, error) {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("object id %q: not a non-zero 64-bit hex number", s)
	}
	return ObjectID(v), nil
}

// Object is a PKCS#11 object held by the device. An Object is immutable once
// published in the device's table: a change makes a new Object that replaces
// it, so an operation holding one never sees it half-changed.
type Object struct {
	id      ObjectID
	class   ck.ObjectClass
	keyType ck.KeyType // meaningful for key classes only (CKK_RSA is 0)
	flags   flag
	attrs   map[ck.AttributeType][]byte // every readable attribute, canonical encoding
	owner   string                      // the crypto user who created it
	shared  []string                    // crypto users it is shared with, sorted
	session SessionID                   // non-zero for a session object
	key     *keyMaterial                // nil for data and certificate objects
	made    *creationMark               // token objects made by an idempotent creation (creation.go)
	bound   binding                     // made from another user's key (policy.go: origin.foreign)
}

// keyMaterial is the secret part of a key, with values derived from it once
// so the hot path does not redo them.
type keyMaterial struct {
	secret []byte            // secret keys
	priv   crypto.PrivateKey // *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey
	pub    crypto.PublicKey  // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey
	block  cipher.Block      // AES keys: the expanded key schedule
	gcm    cipher.AEAD       // AES keys: GCM with a 96-bit IV and 128-bit tag, the common case
	// gcmRand: AES keys: GCM under IVs the device draws (mech.NewGCMRandomIV).
	gcmRand cipher.AEAD
	// macs: generic secrets: keyed HMAC states to reuse (hashpools.go).
	macs *hashPools
}

func (o *Object) ID() ObjectID             { return o.id }
func (o *Object) Class() ck.ObjectClass    { return o.class }
func (o *Object) KeyType() ck.KeyType      { return o.keyType }
func (o *Object) Owner() string            { return o.owner }
func (o *Object) SharedWith() []string     { return slices.Clone(o.shared) }
func (o *Object) Token() bool              { return o.flags&fToken != 0 }
func (o *Object) Label() string            { return string(o.attrs[ck.CKA_LABEL]) }
func (o *Object) has(f flag) bool          { return o.flags&f != 0 }
func (o *Object) isKey() bool              { return o.key != nil }
func (o *Object) sharedWith(u string) bool { _, ok := slices.BinarySearch(o.shared, u); return ok }

// clone returns a copy that may be changed before it is published.
func (o *Object) clone() *Object {
	c := *o
	c.attrs = maps.Clone(o.attrs)
	c.shared = slices.Clone(o.shared)
	return &c
}

func (o *Object) setAttr(t ck.AttributeType, v []byte) {
	o.attrs[t] = v
	if f, ok := flagOf(t); ok {
		if decodeBool(v) {
			o.flags |= f
		} else {
			o.flags &^= f
		}
	}
}

func (o *Object) setBool(t ck.AttributeType, v bool) { a := Bool(t, v); o.setAttr(a.Type, a.Value) }
func (o *Object) setUlong(t ck.AttributeType, v uint) {
	a := Ulong(t, v)
	o.setAttr(a.Type, a.Value)
}

// attribute returns the value of t as p may see it: metadata from the map,
// the contents of a private data object or certificate only for a crypto
// user (contentHidden), key material only as mayLeave allows it to be read.
func (o *Object) attribute(p *principal, t ck.AttributeType) ([]byte, error) {
	if v, ok := o.attrs[t]; ok {
		if contentHidden(p, o, t) {
			return nil, ErrAttributeSensitive
		}
		return v, nil
	}
	if !isContent(o, t) || !o.isKey() {
		return nil, ErrAttributeTypeInvalid
	}
	v, ok := o.key.component(t)
	if !ok {
		return nil, ErrAttributeTypeInvalid
	}
	if mayLeave(p, o, egressRead, nil) != nil {
		clear(v)
		return nil, ErrAttributeSensitive
	}
	return v, nil
}

// component returns a key-material attribute.
func (k *keyMaterial) component(t ck.AttributeType) ([]byte, bool) {
	switch p := k.priv.(type) {
	case nil:
		if t == ck.CKA_VALUE && k.secret != nil {
			return bytes.Clone(k.secret), true
		}
	case *rsa.PrivateKey:
		switch t {
		case ck.CKA_PRIVATE_EXPONENT:
			return p.D.Bytes(), true
		case ck.CKA_PRIME_1:
			return p.Primes[0].Bytes(), true
		case ck.CKA_PRIME_2:
			return p.Primes[1].Bytes(), true
		case ck.CKA_EXPONENT_1:
			return p.Precomputed.Dp.Bytes(), true
		case ck.CKA_EXPONENT_2:
			return p.Precomputed.Dq.Bytes(), true
		case ck.CKA_COEFFICIENT:
			return p.Precomputed.Qinv.Bytes(), true
		}
	case *ecdsa.PrivateKey:
		if t == ck.CKA_VALUE {
			b, err := p.Bytes()
			return b, err == nil
		}
	case ed25519.PrivateKey:
		if t == ck.CKA_VALUE {
			return bytes.Clone(p.Seed()), true
		}
	case interface{ Bytes() []byte }: // ML-DSA and ML-KEM: the seed
		if _, ok := parameterSetOf(p); ok && t == ck.CKA_SEED {
			return bytes.Clone(p.Bytes()), true
		}
	}
	return nil, false
}

// matches reports whether every attribute of tmpl has the same value in o.
// Key material never matches (a search cannot probe a secret), nor does
// contents p may not read.
func (o *Object) matches(p *principal, tmpl Template) bool {
	for _, a := range tmpl {
		v, ok := o.attrs[a.Type]
		if !ok || !bytes.Equal(v, a.Value) || contentHidden(p, o, a.Type) {
			return false
		}
	}
	return true
}

// Record encoding. A token object is stored as a versioned list of
// (type, value) pairs: its public attributes, its owner and sharing list under
// private tags, and its key material (raw secret, PKCS#8 private key, SPKI
// public key). The store seals the whole record; nothing here is in the clear
// on disk.
const recordFormat = 1

const (
	tagBase   = ck.AttributeType(0xC0FF0000) // inside CKA_VENDOR_DEFINED's range
	tagOwner  = tagBase + 1
	tagShared = tagBase + 2
	tagSecret = tagBase + 3
	tagPKCS8  = tagBase + 4
	tagSPKI   = tagBase + 5
	tagMade   = tagBase + 6 // creationMark
	tagBound  = tagBase + 7 // binding, one byte
	tagMLKEM  = tagBase + 8 // ML-KEM decapsulation key: CKA_PARAMETER_SET (one byte) || 64-byte seed
	tagMLKEMP = tagBase + 9 // ML-KEM encapsulation key: CKA_PARAMETER_SET (one byte) || encoding
)

func (o *Object) marshal() ([]byte, error) {
	b := []byte{recordFormat}
	b = binary.AppendUvarint(b, uint64(o.id))
	put := func(t ck.AttributeType, v []byte) {
		b = binary.AppendUvarint(b, uint64(t))
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	for _, t := range slices.Sorted(maps.Keys(o.attrs)) {
		put(t, o.attrs[t])
	}
	put(tagOwner, []byte(o.owner))
	for _, u := range o.shared {
		put(tagShared, []byte(u))
	}
	if o.made != nil {
		put(tagMade, o.made.marshal())
	}
	if o.bound != 0 {
		put(tagBound, []byte{byte(o.bound)})
	}
	if k := o.key; k != nil {
		ps, kem := parameterSetOf(k.pub)
		kem = kem && o.keyType == ck.CKK_ML_KEM // x509 has no ML-KEM encoding
		switch {
		case k.secret != nil:
			put(tagSecret, k.secret)
		case kem && k.priv != nil:
			put(tagMLKEM, append([]byte{byte(ps)}, k.priv.(interface{ Bytes() []byte }).Bytes()...))
		case kem:
			put(tagMLKEMP, append([]byte{byte(ps)}, k.pub.(interface{ Bytes() []byte }).Bytes()...))
		case k.priv != nil:
			der, err := x509.MarshalPKCS8PrivateKey(k.priv)
			if err != nil {
				return nil, fmt.Errorf("object %v: %w", o.id, err)
			}
			put(tagPKCS8, der)
		default:
			der, err := x509.MarshalPKIXPublicKey(k.pub)
			if err != nil {
				return nil, fmt.Errorf("object %v: %w", o.id, err)
			}
			put(tagSPKI, der)
		}
	}
	return b, nil
}

var errRecord = errors.New("malformed object record")

func unmarshalObject(b []byte) (*Object, error) {
	if len(b) == 0 || b[0] != recordFormat {
		return nil, fmt.Errorf("%w: unknown format", errRecord)
	}
	b = b[1:]
	id, n := binary.Uvarint(b)
	if n <= 0 || id == 0 {
		return nil, fmt.Errorf("%w: bad id", errRecord)
	}
	b = b[n:]
	o := &Object{id: ObjectID(id), attrs: map[ck.AttributeType][]byte{}}
	var secret, pkcs8, spki, kemPriv, kemPub []byte
	for len(b) > 0 {
		t, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad tag", errRecord)
		}
		b = b[n:]
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: bad length", errRecord)
		}
		v := bytes.Clone(b[n : n+int(l)])
		b = b[n+int(l):]
		switch at := ck.AttributeType(t); at {
		case tagOwner:
			o.owner = string(v)
		case tagShared:
			o.shared = append(o.shared, string(v))
		case tagSecret:
			secret = v
		case tagPKCS8:
			pkcs8 = v
		case tagSPKI:
			spki = v
		case tagMLKEM:
			kemPriv = v
		case tagMLKEMP:
			kemPub = v
		case tagMade:
			m, err := unmarshalCreationMark(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errRecord, err)
			}
			o.made = m
		case tagBound:
			if len(v) != 1 || binding(v[0]) != boundDerived && binding(v[0]) != boundUnwrapped {
				return nil, fmt.Errorf("%w: bad binding", errRecord)
			}
			o.bound = binding(v[0])
		default:
			if !checkValue(at, v) {
				return nil, fmt.Errorf("%w: bad value for %v", errRecord, at)
			}
			o.setAttr(at, v)
		}
	}
	slices.Sort(o.shared)
	o.class = ck.ObjectClass(decodeUlong(o.attrs[ck.CKA_CLASS]))
	if v, ok := o.attrs[ck.CKA_KEY_TYPE]; ok {
		o.keyType = ck.KeyType(decodeUlong(v))
	}
	var err error
	switch {
	case secret != nil:
		o.key, err = secretMaterial(o.keyType, secret)
	case pkcs8 != nil:
		var priv any
		if priv, err = mech.ParsePKCS8(pkcs8); err == nil {
			o.key, err = privateMaterial(priv)
		}
	case len(kemPriv) > 0:
		var size int
		var dk any
		if size, err = mlkemSize(ck.ParameterSet(kemPriv[0])); err == nil {
			if dk, err = mech.MLKEMFromSeed(size, kemPriv[1:]); err == nil {
				o.key, err = privateMaterial(dk)
			}
		}
	case len(kemPub) > 0:
		var size int
		var ek any
		if size, err = mlkemSize(ck.ParameterSet(kemPub[0])); err == nil {
			if ek, err = mech.ParseMLKEMPublicKey(size, kemPub[1:]); err == nil {
				o.key = &keyMaterial{pub: ek}
			}
		}
	case spki != nil:
		var pub any
		if pub, err = x509.ParsePKIXPublicKey(spki); err == nil {
			o.key = &keyMaterial{pub: pub}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key material: %w", errRecord, err)
	}
	return o, nil
}
