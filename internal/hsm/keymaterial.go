package hsm

import (
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/mldsa"
	"crypto/rsa"
	"fmt"
	"math/big"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// curveParams is CKA_EC_PARAMS of a NIST curve the device supports.
func curveParams(c elliptic.Curve) []byte {
	b, err := mech.CurveOID(c)
	if err != nil {
		panic(err) // only called with curves the device made or accepted
	}
	return b
}

// parseCurve reads CKA_EC_PARAMS: P-256, P-384, P-521, or Ed25519 (by OID
// or by the name "edwards25519", PKCS#11 v3.0 §2.3.6).
func parseCurve(params []byte) (curve elliptic.Curve, ed bool, err error) {
	if mech.IsEd25519Params(params) {
		return nil, true, nil
	}
	if curve, err = mech.CurveFromOID(params); err != nil {
		return nil, false, fmt.Errorf("%w: CKA_EC_PARAMS names no supported curve (P-256, P-384, P-521, Ed25519)", ErrAttributeValueInvalid)
	}
	return curve, false, nil
}

// curveOf reads CKA_EC_PARAMS for a key of type kt, which must agree with
// it (Ed25519 for CKK_EC_EDWARDS, a NIST curve for CKK_EC).
func curveOf(kt ck.KeyType, params []byte) (elliptic.Curve, bool, error) {
	curve, ed, err := parseCurve(params)
	if err != nil {
		return nil, false, err
	}
	if ed != (kt == ck.CKK_EC_EDWARDS) {
		return nil, false, fmt.Errorf("%w: curve does not fit key type", ErrTemplateInconsistent)
	}
	return curve, ed, nil
}

// parseExponent reads CKA_PUBLIC_EXPONENT: an odd integer from 3 to 2^31-1.
func parseExponent(b []byte) (int, error) {
	e := new(big.Int).SetBytes(b)
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return 0, fmt.Errorf("%w: CKA_PUBLIC_EXPONENT", ErrAttributeValueInvalid)
	}
	return int(e.Int64()), nil
}

func secretMaterial(kt ck.KeyType, v []byte) (*keyMaterial, error) {
	switch kt {
	case ck.CKK_AES:
		b, err := aes.NewCipher(v)
		if err != nil {
			return nil, fmt.Errorf("%w: AES key of %d bytes", ErrKeySizeRange, len(v))
		}
		g, err := mech.NewGCM(b, mech.GCMStandardIVLen, mech.GCMTagLen)
		switch {
		case err != nil && fips140.Enforced():
			// FIPS 140-only mode refuses GCM under a caller's IV (that
			// surfaces when one is used); the key serves every other
			// mechanism, and GCM under IVs the device chooses.
			g = nil
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrDevice, err)
		}
		gr, err := mech.NewGCMRandomIV(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDevice, err)
		}
		return &keyMaterial{secret: v, block: b, gcm: g, gcmRand: gr}, nil
	case ck.CKK_GENERIC_SECRET:
		if len(v) == 0 || len(v) > maxGenericSecret {
			return nil, fmt.Errorf("%w: generic secret of %d bytes", ErrKeySizeRange, len(v))
		}
		return &keyMaterial{secret: v, macs: new(hashPools)}, nil
	}
	return nil, fmt.Errorf("%w: secret key type %d", ErrAttributeValueInvalid, kt)
}

func privateMaterial(priv any) (*keyMaterial, error) {
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		if n := p.N.BitLen(); n < mech.RSAMinBits || n > mech.RSAMaxBits {
			return nil, fmt.Errorf("%w: RSA-%d (%d..%d)", ErrKeySizeRange, n, mech.RSAMinBits, mech.RSAMaxBits)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAttributeValueInvalid, err)
		}
		p.Precompute()
		return &keyMaterial{priv: p, pub: &p.PublicKey}, nil
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() && p.Curve != elliptic.P384() && p.Curve != elliptic.P521() {
			return nil, fmt.Errorf("%w: curve %s", ErrKeySizeRange, p.Curve.Params().Name)
		}
		return &keyMaterial{priv: p, pub: &p.PublicKey}, nil
	case ed25519.PrivateKey:
		return &keyMaterial{priv: p, pub: p.Public()}, nil
	case *mldsa.PrivateKey:
		return &keyMaterial{priv: p, pub: p.PublicKey()}, nil
	case mech.MLKEMDecapsulationKey:
		if mech.MLKEMSize(p) != 0 {
			return &keyMaterial{priv: p, pub: mech.MLKEMPublic(p)}, nil
		}
	}
	return nil, fmt.Errorf("%w: private key type %T", ErrAttributeValueInvalid, priv)
}

func publicMaterial(pub any) (*keyMaterial, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if n := p.N.BitLen(); n < mech.RSAMinBits || n > mech.RSAMaxBits {
			return nil, fmt.Errorf("%w: RSA-%d (%d..%d)", ErrKeySizeRange, n, mech.RSAMinBits, mech.RSAMaxBits)
		}
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() && p.Curve != elliptic.P384() && p.Curve != elliptic.P521() {
			return nil, fmt.Errorf("%w: curve %s", ErrKeySizeRange, p.Curve.Params().Name)
		}
	case ed25519.PublicKey, *mldsa.PublicKey:
	default:
		if mech.MLKEMSize(pub) == 0 {
			return nil, fmt.Errorf("%w: public key type %T", ErrAttributeValueInvalid, pub)
		}
	}
	return &keyMaterial{pub: pub}, nil
}

// keyTypeOf returns the PKCS#11 key type of a private or public key.
func keyTypeOf(k any) ck.KeyType {
	switch k.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return ck.CKK_RSA
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return ck.CKK_EC
	case *mldsa.PrivateKey, *mldsa.PublicKey:
		return ck.CKK_ML_DSA
	}
	if mech.MLKEMSize(k) != 0 {
		return ck.CKK_ML_KEM
	}
	return ck.CKK_EC_EDWARDS
}

// setPublicAttrs records the public facts of a key as readable attributes.
func (o *Object) setPublicAttrs() {
	k := o.key
	if k.secret != nil {
		o.setUlong(ck.CKA_VALUE_LEN, uint(len(k.secret)))
		return
	}
	switch p := k.pub.(type) {
	case *rsa.PublicKey:
		o.setAttr(ck.CKA_MODULUS, p.N.Bytes())
		o.setAttr(ck.CKA_PUBLIC_EXPONENT, big.NewInt(int64(p.E)).Bytes())
		if o.class == ck.CKO_PUBLIC_KEY {
			o.setUlong(ck.CKA_MODULUS_BITS, uint(p.N.BitLen()))
		}
	case *ecdsa.PublicKey:
		o.setAttr(ck.CKA_EC_PARAMS, curveParams(p.Curve))
		if pt, err := mech.MarshalECPointDER(p); err == nil {
			o.setAttr(ck.CKA_EC_POINT, pt)
		}
	case ed25519.PublicKey:
		o.setAttr(ck.CKA_EC_PARAMS, mech.Ed25519OID())
		if pt, err := mech.MarshalEd25519PointDER(p); err == nil {
			o.setAttr(ck.CKA_EC_POINT, pt)
		}
	default:
		if ps, ok := parameterSetOf(p); ok {
			o.setUlong(ck.CKA_PARAMETER_SET, uint(ps))
			if o.class == ck.CKO_PUBLIC_KEY {
				o.setAttr(ck.CKA_VALUE, p.(interface{ Bytes() []byte }).Bytes())
			}
		}
	}
}

// privateFromTemplate builds a private key from the components C_CreateObject
// passes.
func privateFromTemplate(kt ck.KeyType, tmpl Template) (any, error) {
	get := func(t ck.AttributeType) ([]byte, error) {
		v, ok := tmpl.Get(t)
		if !ok || len(v) == 0 {
			return nil, fmt.Errorf("%w: %v", ErrTemplateIncomplete, t)
		}
		return v, nil
	}
	switch kt {
	case ck.CKK_RSA:
		var parts [5][]byte
		for i, t := range []ck.AttributeType{ck.CKA_MODULUS, ck.CKA_PUBLIC_EXPONENT, ck.CKA_PRIVATE_EXPONENT, ck.CKA_PRIME_1, ck.CKA_PRIME_2} {
			v, err := get(t)
			if err != nil {
				return nil, err
			}
			parts[i] = v
		}
		exp, err := parseExponent(parts[1])
		if err != nil {
			return nil, err
		}
		return &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(parts[0]), E: exp},
			D:         new(big.Int).SetBytes(parts[2]),
			Primes:    []*big.Int{new(big.Int).SetBytes(parts[3]), new(big.Int).SetBytes(parts[4])},
		}, nil
	case ck.CKK_EC, ck.CKK_EC_EDWARDS:
		params, err := get(ck.CKA_EC_PARAMS)
		if err != nil {
			return nil, err
		}
		value, err := get(ck.CKA_VALUE)
		if err != nil {
			return nil, err
		}
		curve, ed, err := curveOf(kt, params)
		if err != nil {
			return nil, err
		}
		var k any
		if ed {
			k, err = mech.Ed25519FromSeed(value)
		} else {
			k, err = mech.ParseECPrivateScalar(curve, value)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAttributeValueInvalid, err)
		}
		return k, nil
	case ck.CKK_ML_DSA, ck.CKK_ML_KEM:
		return pqPrivateFromTemplate(kt, tmpl)
	}
	return nil, fmt.Errorf("%w: key type %d", ErrAttributeValueInvalid, kt)
}

// publicFromTemplate builds a public key from C_CreateObject's attributes.
func publicFromTemplate(kt ck.KeyType, tmpl Template) (any, error) {
	switch kt {
	case ck.CKK_RSA:
		n, ok1 := tmpl.Get(ck.CKA_MODULUS)
		e, ok2 := tmpl.Get(ck.CKA_PUBLIC_EXPONENT)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: CKA_MODULUS and CKA_PUBLIC_EXPONENT", ErrTemplateIncomplete)
		}
		exp, err := parseExponent(e)
		if err != nil {
			return nil, err
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case ck.CKK_EC, ck.CKK_EC_EDWARDS:
		params, ok1 := tmpl.Get(ck.CKA_EC_PARAMS)
		point, ok2 := tmpl.Get(ck.CKA_EC_POINT)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: CKA_EC_PARAMS and CKA_EC_POINT", ErrTemplateIncomplete)
		}
		curve, ed, err := curveOf(kt, params)
		if err != nil {
			return nil, err
		}
		var k any
		if ed {
			k, err = mech.ParseEd25519Point(point)
		} else {
			k, err = mech.ParseECPoint(curve, point)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAttributeValueInvalid, err)
		}
		return k, nil
	case ck.CKK_ML_DSA, ck.CKK_ML_KEM:
		return pqPublicFromTemplate(kt, tmpl)
	}
	return nil, fmt.Errorf("%w: key type %d", ErrAttributeValueInvalid, kt)
}
