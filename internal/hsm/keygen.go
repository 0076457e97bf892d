package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// GenerateKey makes a secret key inside the HSM (C_GenerateKey):
// CKM_AES_KEY_GEN with CKA_VALUE_LEN 16, 24 or 32, or
// CKM_GENERIC_SECRET_KEY_GEN with CKA_VALUE_LEN 1..800 (maxGenericSecret).
func (d *Device) GenerateKey(ctx context.Context, sid SessionID, m Mechanism, tmpl Template) (ObjectID, error) {
	const op = "key.generate"
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, err
	}
	o, err := d.newSecretKey(op, p, m, tmpl)
	if err == nil {
		err = d.publish(ctx, s, p, o)
	}
	if err != nil {
		err = asOpErr(op, err)
		d.audit(sid, p, op, 0, "", err)
		return 0, err
	}
	d.audit(sid, p, op, o.id, "", nil)
	return o.id, nil
}

func asOpErr(op string, err error) error {
	if _, ok := err.(*Error); ok {
		return err
	}
	return &Error{Op: op, Err: err}
}

func (d *Device) newSecretKey(op string, p *principal, m Mechanism, tmpl Template) (*Object, error) {
	if _, err := d.mechanismFor(op, m.Type, FnGenerate); err != nil {
		return nil, err
	}
	kt := ck.CKK_AES
	if m.Type == ck.CKM_GENERIC_SECRET_KEY_GEN {
		kt = ck.CKK_GENERIC_SECRET
	}
	v, ok := tmpl.Get(ck.CKA_VALUE_LEN)
	if !ok || !checkValue(ck.CKA_VALUE_LEN, v) {
		return nil, fmt.Errorf("%w: CKA_VALUE_LEN", ErrTemplateIncomplete)
	}
	n := decodeUlong(v)
	if kt == ck.CKK_AES && n != 16 && n != 24 && n != 32 || n == 0 || n > maxGenericSecret {
		return nil, fmt.Errorf("%w: %d bytes", ErrKeySizeRange, n)
	}
	if _, ok := tmpl.Get(ck.CKA_VALUE); ok {
		return nil, fmt.Errorf("%w: CKA_VALUE is generated", ErrTemplateInconsistent)
	}
	secret := make([]byte, n)
	if _, err := io.ReadFull(d.cfg.Rand, secret); err != nil {
		return nil, fmt.Errorf("%w: random: %w", ErrDevice, err)
	}
	km, err := secretMaterial(kt, secret)
	if err != nil {
		return nil, err
	}
	return buildKey(ck.CKO_SECRET_KEY, kt, km, tmpl, origin{creator: p, generated: true, mechanism: m.Type}, map[ck.AttributeType]bool{ck.CKA_VALUE_LEN: true})
}

// GenerateKeyPair makes a key pair inside the HSM (C_GenerateKeyPair): RSA
// (CKA_MODULUS_BITS 2048..4096 and optional CKA_PUBLIC_EXPONENT in the public
// template), EC (CKA_EC_PARAMS naming P-256, P-384 or P-521) or Ed25519.
func (d *Device) GenerateKeyPair(ctx context.Context, sid SessionID, m Mechanism, pubTmpl, privTmpl Template) (pub, priv ObjectID, err error) {
	const op = "key.generate-pair"
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, 0, err
	}
	po, qo, err := d.newKeyPair(op, p, m, pubTmpl, privTmpl)
	if err == nil {
		if err = d.publish(ctx, s, p, qo); err == nil {
			if err = d.publish(ctx, s, p, po); err != nil {
				_ = d.destroy(ctx, s, p, qo.id) // keep no half pair
			}
		}
	}
	if err != nil {
		err = asOpErr(op, err)
		d.audit(sid, p, op, 0, "", err)
		return 0, 0, err
	}
	d.audit(sid, p, op, qo.id, "public "+po.id.String(), nil)
	return po.id, qo.id, nil
}

func (d *Device) newKeyPair(op string, p *principal, m Mechanism, pubTmpl, privTmpl Template) (pub, priv *Object, err error) {
	if _, err := d.mechanismFor(op, m.Type, FnGenerateKeyPair); err != nil {
		return nil, nil, err
	}
	var key any
	skip := map[ck.AttributeType]bool{}
	switch m.Type {
	case ck.CKM_RSA_PKCS_KEY_PAIR_GEN:
		v, ok := pubTmpl.Get(ck.CKA_MODULUS_BITS)
		if !ok || !checkValue(ck.CKA_MODULUS_BITS, v) {
			return nil, nil, fmt.Errorf("%w: CKA_MODULUS_BITS", ErrTemplateIncomplete)
		}
		e := 65537
		if ev, ok := pubTmpl.Get(ck.CKA_PUBLIC_EXPONENT); ok {
			if e, err = parseExponent(ev); err != nil {
				return nil, nil, err
			}
		}
		key, err = mech.GenerateRSA(d.cfg.Rand, int(decodeUlong(v)), e)
		skip[ck.CKA_MODULUS_BITS], skip[ck.CKA_PUBLIC_EXPONENT] = true, true
	case ck.CKM_EC_KEY_PAIR_GEN:
		params, ok := pubTmpl.Get(ck.CKA_EC_PARAMS)
		if !ok {
			params, ok = privTmpl.Get(ck.CKA_EC_PARAMS)
		}
		if !ok {
			return nil, nil, fmt.Errorf("%w: CKA_EC_PARAMS", ErrTemplateIncomplete)
		}
		curve, ed, perr := parseCurve(params)
		if perr != nil {
			return nil, nil, perr
		}
		if ed {
			return nil, nil, fmt.Errorf("%w: Ed25519 keys use CKM_EC_EDWARDS_KEY_PAIR_GEN", ErrTemplateInconsistent)
		}
		key, err = mech.GenerateEC(d.cfg.Rand, curve)
		skip[ck.CKA_EC_PARAMS] = true
	case ck.CKM_EC_EDWARDS_KEY_PAIR_GEN:
		if params, ok := pubTmpl.Get(ck.CKA_EC_PARAMS); ok {
			if _, ed, perr := parseCurve(params); perr != nil || !ed {
				return nil, nil, fmt.Errorf("%w: CKA_EC_PARAMS must name Ed25519", ErrAttributeValueInvalid)
			}
		}
		key, err = mech.GenerateEd25519(d.cfg.Rand)
		skip[ck.CKA_EC_PARAMS] = true
	case ck.CKM_ML_DSA_KEY_PAIR_GEN, ck.CKM_ML_KEM_KEY_PAIR_GEN:
		if key, err = generatePQ(m.Type, pubTmpl, privTmpl); err != nil {
			if _, ok := errors.AsType[*Kind](err); ok {
				return nil, nil, err
			}
		}
		skip[ck.CKA_PARAMETER_SET] = true
	}
	if err != nil {
		return nil, nil, mechErr(err, FnGenerateKeyPair)
	}
	km, err := privateMaterial(key)
	if err != nil {
		return nil, nil, err
	}
	from := origin{creator: p, generated: true, mechanism: m.Type}
	kt := keyTypeOf(key)
	pubTmpl, privTmpl = withKeyPairID(key, pubTmpl, privTmpl)
	if priv, err = buildKey(ck.CKO_PRIVATE_KEY, kt, km, privTmpl, from, skip); err != nil {
		return nil, nil, err
	}
	if pub, err = buildKey(ck.CKO_PUBLIC_KEY, kt, km, pubTmpl, from, skip); err != nil {
		return nil, nil, err
	}
	return pub, priv, nil
}

// keyBytes is what wrapping and export carry of a key: the raw value of a
// secret key, PKCS#8 of a private key. Only after mayLeave.
func keyBytes(o *Object) ([]byte, error) {
	if o.key.secret != nil {
		return bytes.Clone(o.key.secret), nil
	}
	if o.key.priv == nil {
		return nil, fmt.Errorf("%w: public keys are not wrapped", ErrKeyHandleInvalid)
	}
	if o.keyType == ck.CKK_ML_KEM {
		// Go's x509 has no PKCS#8 encoding of ML-KEM keys (ML-DSA's it has).
		return nil, fmt.Errorf("%w: ML-KEM private keys are neither wrapped nor exported", ErrKeyNoEncoding)
	}
	return x509.MarshalPKCS8PrivateKey(o.key.priv)
}

// WrapKey encrypts a key under another (C_WrapKey), as mayLeave allows: the
// key must be the caller's own and extractable; a key marked
// CKA_WRAP_WITH_TRUSTED only under a trusted wrapping key.
func (d *Device) WrapKey(sid SessionID, wrapping ObjectID, m Mechanism, key ObjectID) ([]byte, error) {
	out, _, err := d.WrapKeyIV(sid, wrapping, m, key)
	return out, err
}

// WrapKeyIV is WrapKey that also returns the IV the device generated, nil
// if it used the caller's: for CKM_AES_GCM with a 12-byte all-zero IV, and
// for CKM_CLOUDHSM_AES_GCM, as EncryptIV says.
func (d *Device) WrapKeyIV(sid SessionID, wrapping ObjectID, m Mechanism, key ObjectID) (out, iv []byte, err error) {
	const op = "key.wrap"
	s, p, wk, err := d.useKey(op, sid, wrapping)
	if err != nil {
		return nil, nil, err
	}
	out, iv, err = d.wrap(op, s, p, wk, m, key)
	d.audit(sid, p, op, key, "wrapping key "+wrapping.String(), err)
	return out, iv, err
}

func (d *Device) wrap(op string, s *session, p *principal, wk *Object, m Mechanism, key ObjectID) ([]byte, []byte, error) {
	target, err := d.lookup(s, p, key)
	switch {
	case err != nil:
		return nil, nil, opErr(op, ErrKeyHandleInvalid, "key to wrap")
	case !target.isKey():
		return nil, nil, opErr(op, ErrKeyHandleInvalid, "not a key")
	}
	if err := mayLeave(p, target, egressWrap, wk); err != nil {
		return nil, nil, &Error{Op: op, Err: err}
	}
	oper, err := d.prepare(op, p, FnWrap, wk, m)
	if err != nil {
		return nil, nil, wrapKeyErr(err, ErrWrappingKeyInvalid)
	}
	data, err := keyBytes(target)
	if err != nil {
		return nil, nil, &Error{Op: op, Err: err}
	}
	oper.fn = FnEncrypt
	out, err := oper.update(nil, data)
	if err == nil {
		out, err = oper.final(out, nil)
	}
	if err != nil {
		return nil, nil, &Error{Op: op, Err: err}
	}
	return out, oper.iv, nil
}

// wrapKeyErr reports a key-type mismatch of the wrapping or unwrapping key
// with the code PKCS#11 gives it.
func wrapKeyErr(err error, kind *Kind) error {
	if Code(err) == ck.CKR_KEY_TYPE_INCONSISTENT {
		return &Error{Op: "key.wrap", Err: fmt.Errorf("%w: %w", kind, err)}
	}
	return err
}

// UnwrapKey decrypts a wrapped key into a new key object (C_UnwrapKey).
// The template gives CKA_CLASS and, for secret keys, CKA_KEY_TYPE.
func (d *Device) UnwrapKey(ctx context.Context, sid SessionID, unwrapping ObjectID, m Mechanism, wrapped []byte, tmpl Template) (ObjectID, error) {
	const op = "key.unwrap"
	s, p, uk, err := d.useKey(op, sid, unwrapping)
	if err != nil {
		return 0, err
	}
	o, err := d.unwrap(op, p, uk, m, wrapped, tmpl)
	if err == nil {
		err = d.publish(ctx, s, p, o)
	}
	if err != nil {
		err = asOpErr(op, err)
		d.audit(sid, p, op, 0, "unwrapping key "+unwrapping.String(), err)
		return 0, err
	}
	d.audit(sid, p, op, o.id, "unwrapping key "+unwrapping.String(), nil)
	return o.id, nil
}

func (d *Device) unwrap(op string, p *principal, uk *Object, m Mechanism, wrapped []byte, tmpl Template) (*Object, error) {
	oper, err := d.prepare(op, p, FnUnwrap, uk, m)
	if err != nil {
		return nil, wrapKeyErr(err, ErrUnwrappingKeyInvalid)
	}
	from := origin{creator: p, unwrapper: uk, sealed: d.opensTrusted(uk)}
	oper.fn = FnDecrypt
	plain, err := oper.update(nil, wrapped)
	if err == nil {
		plain, err = oper.final(plain, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWrappedKeyInvalid, err)
	}
	cv, ok := tmpl.Get(ck.CKA_CLASS)
	if !ok {
		return nil, fmt.Errorf("%w: CKA_CLASS", ErrTemplateIncomplete)
	}
	switch class := ck.ObjectClass(decodeUlong(cv)); class {
	case ck.CKO_SECRET_KEY:
		kv, ok := tmpl.Get(ck.CKA_KEY_TYPE)
		if !ok {
			return nil, fmt.Errorf("%w: CKA_KEY_TYPE", ErrTemplateIncomplete)
		}
		kt := ck.KeyType(decodeUlong(kv))
		km, err := secretMaterial(kt, plain)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWrappedKeyInvalid, err)
		}
		if vl, ok := tmpl.Get(ck.CKA_VALUE_LEN); ok && decodeUlong(vl) != uint(len(plain)) {
			return nil, fmt.Errorf("%w: CKA_VALUE_LEN does not match the wrapped key", ErrTemplateInconsistent)
		}
		return buildKey(class, kt, km, tmpl, from, map[ck.AttributeType]bool{ck.CKA_VALUE_LEN: true})
	case ck.CKO_PRIVATE_KEY:
		key, err := mech.ParsePKCS8(plain)
		if err != nil {
			return nil, fmt.Errorf("%w: not a PKCS#8 private key", ErrWrappedKeyInvalid)
		}
		km, err := privateMaterial(key)
		if err != nil {
			return nil, err
		}
		if kv, ok := tmpl.Get(ck.CKA_KEY_TYPE); ok && ck.KeyType(decodeUlong(kv)) != keyTypeOf(key) {
			return nil, fmt.Errorf("%w: CKA_KEY_TYPE does not match the wrapped key", ErrTemplateInconsistent)
		}
		return buildKey(class, keyTypeOf(key), km, tmpl, from, nil)
	}
	return nil, fmt.Errorf("%w: only secret and private keys are unwrapped", ErrTemplateInconsistent)
}

// DeriveKey derives a secret key (C_DeriveKey): with CKM_SP800_108_COUNTER_KDF
// from a generic secret (see kbkdf), or with CKM_ECDH1_DERIVE. With
// CKD_NULL the key is the shared secret's x-coordinate, truncated to
// CKA_VALUE_LEN (leftmost bytes) when the template gives one; with
// CKD_SHA1_KDF..CKD_SHA512_KDF it is the ANSI X9.63 KDF of that secret and
// the shared data, CKA_VALUE_LEN bytes (default: the secret's length).
func (d *Device) DeriveKey(ctx context.Context, sid SessionID, base ObjectID, m Mechanism, tmpl Template) (ObjectID, error) {
	const op = "key.derive"
	s, p, bk, err := d.useKey(op, sid, base)
	if err != nil {
		return 0, err
	}
	o, err := d.derive(op, p, bk, m, tmpl)
	if err == nil {
		err = d.publish(ctx, s, p, o)
	}
	if err != nil {
		err = asOpErr(op, err)
		d.audit(sid, p, op, 0, "base key "+base.String(), err)
		return 0, err
	}
	d.audit(sid, p, op, o.id, "base key "+base.String(), nil)
	return o.id, nil
}

// x963Hashes are the X9.63 KDFs of CK_ECDH1_DERIVE_PARAMS.
var x963Hashes = map[ck.KDF]crypto.Hash{
	ck.CKD_SHA1_KDF: crypto.SHA1, ck.CKD_SHA224_KDF: crypto.SHA224, ck.CKD_SHA256_KDF: crypto.SHA256,
	ck.CKD_SHA384_KDF: crypto.SHA384, ck.CKD_SHA512_KDF: crypto.SHA512,
}

func (d *Device) derive(op string, p *principal, bk *Object, m Mechanism, tmpl Template) (*Object, error) {
	if _, err := d.prepare(op, p, FnDerive, bk, m); err != nil {
		return nil, err
	}
	kt := ck.CKK_GENERIC_SECRET
	if kv, ok := tmpl.Get(ck.CKA_KEY_TYPE); ok {
		kt = ck.KeyType(decodeUlong(kv))
	}
	vl, hasLen := tmpl.Get(ck.CKA_VALUE_LEN)
	var (
		secret []byte
		err    error
	)
	switch m.Type {
	case ck.CKM_SP800_108_COUNTER_KDF:
		if !hasLen {
			return nil, fmt.Errorf("%w: CKA_VALUE_LEN", ErrTemplateIncomplete)
		}
		secret, err = d.kbkdf(m, bk.key.secret, decodeUlong(vl))
	default:
		secret, err = d.ecdhDerive(m, bk, vl, hasLen)
	}
	if err != nil {
		return nil, err
	}
	km, err := secretMaterial(kt, secret)
	if err != nil {
		return nil, err
	}
	return buildKey(ck.CKO_SECRET_KEY, kt, km, tmpl, origin{creator: p, generated: true, base: bk}, map[ck.AttributeType]bool{ck.CKA_VALUE_LEN: true})
}

// ecdhDerive is CKM_ECDH1_DERIVE's secret: the x-coordinate (CKD_NULL),
// cut to CKA_VALUE_LEN, or its X9.63 KDF, CKA_VALUE_LEN bytes (default:
// the x-coordinate's length).
func (d *Device) ecdhDerive(m Mechanism, bk *Object, vl []byte, hasLen bool) ([]byte, error) {
	kdf, ok := x963Hashes[m.KDF]
	switch {
	case !ok && m.KDF != ck.CKD_NULL:
		return nil, fmt.Errorf("%w: KDF %d: CKD_NULL or CKD_SHA1_KDF..CKD_SHA512_KDF", ErrMechanismParamInvalid, m.KDF)
	case m.KDF == ck.CKD_NULL && len(m.SharedData) != 0:
		return nil, fmt.Errorf("%w: CKD_NULL takes no shared data", ErrMechanismParamInvalid)
	case m.KDF == ck.CKD_SHA1_KDF && d.cfg.FIPS:
		return nil, fmt.Errorf("%w: CKD_SHA1_KDF is not offered in FIPS mode", ErrMechanismParamInvalid)
	}
	z, err := mech.DeriveECDH(bk.key.priv.(*ecdsa.PrivateKey), m.PublicData)
	if err != nil {
		return nil, mechErr(err, FnDerive)
	}
	defer clear(z)
	n := uint(len(z))
	if hasLen {
		n = decodeUlong(vl)
	}
	if m.KDF == ck.CKD_NULL {
		if n == 0 || n > uint(len(z)) {
			return nil, fmt.Errorf("%w: CKA_VALUE_LEN %d of a %d-byte secret", ErrTemplateInconsistent, n, len(z))
		}
		return bytes.Clone(z[:n]), nil
	}
	if n == 0 || n > maxGenericSecret {
		return nil, fmt.Errorf("%w: CKA_VALUE_LEN %d: 1 to %d", ErrTemplateInconsistent, n, maxGenericSecret)
	}
	secret, err := mech.X963KDF(kdf, z, m.SharedData, int(n))
	return secret, mechErr(err, FnDerive)
}

// kbkdfPRFs are the PRFs CKM_SP800_108_COUNTER_KDF offers: HMAC with a
// generic secret base key.
var kbkdfPRFs = map[ck.MechanismType]crypto.Hash{
	ck.CKM_SHA_1_HMAC: crypto.SHA1, ck.CKM_SHA224_HMAC: crypto.SHA224, ck.CKM_SHA256_HMAC: crypto.SHA256,
	ck.CKM_SHA384_HMAC: crypto.SHA384, ck.CKM_SHA512_HMAC: crypto.SHA512,
}

// kbkdf is CKM_SP800_108_COUNTER_KDF (PKCS #11 v3.0 §2.42): the SP 800-108
// counter-mode KDF of the base key, n bytes, its PRF input laid out by the
// data parameters. Additional derived keys are not offered (the C boundary
// refuses them).
func (d *Device) kbkdf(m Mechanism, key []byte, n uint) ([]byte, error) {
	h, ok := kbkdfPRFs[m.PRF]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: PRF %v: CKM_SHA_1_HMAC .. CKM_SHA512_HMAC", ErrMechanismParamInvalid, m.PRF)
	case h == crypto.SHA1 && d.cfg.FIPS:
		return nil, fmt.Errorf("%w: the HMAC-SHA-1 PRF is not offered in FIPS mode", ErrMechanismParamInvalid)
	case n == 0 || n > maxGenericSecret:
		return nil, fmt.Errorf("%w: CKA_VALUE_LEN %d: 1 to %d", ErrTemplateInconsistent, n, maxGenericSecret)
	}
	segs := make([]mech.KBKDFSegment, len(m.KDFData))
	for i, p := range m.KDFData {
		s := mech.KBKDFSegment{WidthBits: int(p.WidthBits), LittleEndian: p.LittleEndian}
		switch p.Type {
		case ck.CK_SP800_108_ITERATION_VARIABLE:
			s.Kind = mech.KBKDFCounter
		case ck.CK_SP800_108_DKM_LENGTH:
			s.Kind = mech.KBKDFLength
			switch p.DKMMethod {
			case ck.CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS:
				s.SumOfKeys = true
			case ck.CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS:
			default:
				return nil, fmt.Errorf("%w: DKM length method %d", ErrMechanismParamInvalid, p.DKMMethod)
			}
		case ck.CK_SP800_108_BYTE_ARRAY:
			s.Kind, s.Bytes = mech.KBKDFBytes, p.Value
		default: // CK_SP800_108_OPTIONAL_COUNTER is for the feedback and pipeline modes
			return nil, fmt.Errorf("%w: data parameter type %d in counter mode", ErrMechanismParamInvalid, p.Type)
		}
		segs[i] = s
	}
	out, err := mech.KBKDFCounterHMAC(h, key, segs, int(n))
	return out, mechErr(err, FnDerive)
}

// ExportPublicKey returns a public or private key's public half as
// SubjectPublicKeyInfo DER. Anyone who can see the key may.
func (d *Device) ExportPublicKey(sid SessionID, id ObjectID) ([]byte, error) {
	const op = "key.export-public"
	s, p, err := d.whoami(sid)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	o, err := d.lookup(s, p, id)
	if err != nil || o.key == nil || o.key.pub == nil {
		return nil, opErr(op, ErrKeyHandleInvalid, "not an asymmetric key")
	}
	if o.keyType == ck.CKK_ML_KEM {
		return nil, opErr(op, ErrKeyTypeInconsistent, "ML-KEM keys have no SubjectPublicKeyInfo here: read CKA_VALUE")
	}
	der, err := x509.MarshalPKIXPublicKey(o.key.pub)
	if err != nil {
		return nil, opErr(op, ErrDevice, "%v", err)
	}
	return der, nil
}

// ExportKey returns a key's secret in the clear, as CloudHSM's `key export`
// does: the raw value of a secret key, PKCS#8 of a private key. It follows
// the rules wrapping follows (mayLeave): only the owner, only an extractable
// key, never a CKA_WRAP_WITH_TRUSTED key (it leaves only wrapped under a
// trusted key).
func (d *Device) ExportKey(ctx context.Context, sid SessionID, id ObjectID) ([]byte, error) {
	const op = "key.export"
	_, p, o, err := d.useKey(op, sid, id)
	if err == nil {
		if lerr := mayLeave(p, o, egressExport, nil); lerr != nil {
			err = &Error{Op: op, Err: lerr}
		}
	}
	var out []byte
	if err == nil {
		if out, err = keyBytes(o); err != nil {
			err = &Error{Op: op, Err: err}
		}
	}
	if aerr := d.auditSync(ctx, sid, p, op, id, "", err); aerr != nil && err == nil {
		return nil, opErr(op, ErrDevice, "audit: %v", aerr)
	}
	return out, err
}
