package hsm

import (
	"context"
	"crypto/mldsa"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// ML-DSA (FIPS 204) and ML-KEM (FIPS 203) keys, with PKCS#11 v3.2's
// attributes: CKA_PARAMETER_SET on both halves, the encoded public key as
// CKA_VALUE of the public key, the seed as CKA_SEED of the private key (the
// form FIPS 204 and 203 and Go's API keep; the expanded private key is not
// offered, so CKA_VALUE of such a private key is CKR_ATTRIBUTE_TYPE_INVALID).
// The seed is key material: sensitive and extractable as any private key's.

// mldsaParams maps CKA_PARAMETER_SET to ML-DSA's parameters.
func mldsaParams(ps ck.ParameterSet) (mldsa.Parameters, error) {
	switch ps {
	case ck.CKP_ML_DSA_44:
		return mldsa.MLDSA44(), nil
	case ck.CKP_ML_DSA_65:
		return mldsa.MLDSA65(), nil
	case ck.CKP_ML_DSA_87:
		return mldsa.MLDSA87(), nil
	}
	return mldsa.Parameters{}, fmt.Errorf("%w: CKA_PARAMETER_SET %d is no ML-DSA parameter set (CKP_ML_DSA_44, _65, _87)", ErrAttributeValueInvalid, ps)
}

// mlkemSize maps CKA_PARAMETER_SET to ML-KEM-768 or -1024 (Go offers no
// ML-KEM-512: CKP_ML_KEM_512 is CKR_KEY_SIZE_RANGE).
func mlkemSize(ps ck.ParameterSet) (int, error) {
	switch ps {
	case ck.CKP_ML_KEM_768:
		return 768, nil
	case ck.CKP_ML_KEM_1024:
		return 1024, nil
	case ck.CKP_ML_KEM_512:
		return 0, fmt.Errorf("%w: ML-KEM-512 is not offered (ML-KEM-768 and ML-KEM-1024 are)", ErrKeySizeRange)
	}
	return 0, fmt.Errorf("%w: CKA_PARAMETER_SET %d is no ML-KEM parameter set", ErrAttributeValueInvalid, ps)
}

// parameterSetOf returns CKA_PARAMETER_SET of an ML-DSA or ML-KEM key of
// either half.
func parameterSetOf(k any) (ck.ParameterSet, bool) {
	switch k := k.(type) {
	case *mldsa.PrivateKey:
		return parameterSetOf(k.PublicKey())
	case *mldsa.PublicKey:
		switch k.Parameters() {
		case mldsa.MLDSA44():
			return ck.CKP_ML_DSA_44, true
		case mldsa.MLDSA65():
			return ck.CKP_ML_DSA_65, true
		case mldsa.MLDSA87():
			return ck.CKP_ML_DSA_87, true
		}
	}
	switch mech.MLKEMSize(k) {
	case 768:
		return ck.CKP_ML_KEM_768, true
	case 1024:
		return ck.CKP_ML_KEM_1024, true
	}
	return 0, false
}

// pairParameterSet reads CKA_PARAMETER_SET from a key pair's templates: in
// either, and the same if in both.
func pairParameterSet(pubTmpl, privTmpl Template) (ck.ParameterSet, error) {
	pv, pok := pubTmpl.Get(ck.CKA_PARAMETER_SET)
	qv, qok := privTmpl.Get(ck.CKA_PARAMETER_SET)
	switch {
	case !pok && !qok:
		return 0, fmt.Errorf("%w: CKA_PARAMETER_SET", ErrTemplateIncomplete)
	case pok && !checkValue(ck.CKA_PARAMETER_SET, pv), qok && !checkValue(ck.CKA_PARAMETER_SET, qv):
		return 0, fmt.Errorf("%w: CKA_PARAMETER_SET", ErrAttributeValueInvalid)
	case pok && qok && decodeUlong(pv) != decodeUlong(qv):
		return 0, fmt.Errorf("%w: CKA_PARAMETER_SET differs between the templates", ErrTemplateInconsistent)
	case pok:
		return ck.ParameterSet(decodeUlong(pv)), nil
	}
	return ck.ParameterSet(decodeUlong(qv)), nil
}

// generatePQ makes an ML-DSA or ML-KEM key for newKeyPair.
func generatePQ(m ck.MechanismType, pubTmpl, privTmpl Template) (any, error) {
	ps, err := pairParameterSet(pubTmpl, privTmpl)
	if err != nil {
		return nil, err
	}
	if m == ck.CKM_ML_DSA_KEY_PAIR_GEN {
		params, err := mldsaParams(ps)
		if err != nil {
			return nil, err
		}
		return mech.GenerateMLDSA(params)
	}
	size, err := mlkemSize(ps)
	if err != nil {
		return nil, err
	}
	return mech.GenerateMLKEM(size)
}

// templateParameterSet reads CKA_PARAMETER_SET of a C_CreateObject template.
func templateParameterSet(tmpl Template) (ck.ParameterSet, error) {
	v, ok := tmpl.Get(ck.CKA_PARAMETER_SET)
	if !ok || !checkValue(ck.CKA_PARAMETER_SET, v) {
		return 0, fmt.Errorf("%w: CKA_PARAMETER_SET", ErrTemplateIncomplete)
	}
	return ck.ParameterSet(decodeUlong(v)), nil
}

// pqPrivateFromTemplate builds an ML-DSA or ML-KEM private key from
// CKA_PARAMETER_SET and CKA_SEED.
func pqPrivateFromTemplate(kt ck.KeyType, tmpl Template) (any, error) {
	ps, err := templateParameterSet(tmpl)
	if err != nil {
		return nil, err
	}
	seed, ok := tmpl.Get(ck.CKA_SEED)
	if !ok {
		if _, v := tmpl.Get(ck.CKA_VALUE); v {
			return nil, fmt.Errorf("%w: ML-DSA and ML-KEM private keys are created from CKA_SEED, not the expanded CKA_VALUE", ErrTemplateInconsistent)
		}
		return nil, fmt.Errorf("%w: CKA_SEED", ErrTemplateIncomplete)
	}
	var k any
	if kt == ck.CKK_ML_DSA {
		params, perr := mldsaParams(ps)
		if perr != nil {
			return nil, perr
		}
		k, err = mech.MLDSAFromSeed(params, seed)
	} else {
		size, perr := mlkemSize(ps)
		if perr != nil {
			return nil, perr
		}
		k, err = mech.MLKEMFromSeed(size, seed)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAttributeValueInvalid, err)
	}
	return k, nil
}

// pqPublicFromTemplate builds an ML-DSA or ML-KEM public key from
// CKA_PARAMETER_SET and CKA_VALUE.
func pqPublicFromTemplate(kt ck.KeyType, tmpl Template) (any, error) {
	ps, err := templateParameterSet(tmpl)
	if err != nil {
		return nil, err
	}
	v, ok := tmpl.Get(ck.CKA_VALUE)
	if !ok {
		return nil, fmt.Errorf("%w: CKA_VALUE", ErrTemplateIncomplete)
	}
	var k any
	if kt == ck.CKK_ML_DSA {
		params, perr := mldsaParams(ps)
		if perr != nil {
			return nil, perr
		}
		k, err = mech.ParseMLDSAPublicKey(params, v)
	} else {
		size, perr := mlkemSize(ps)
		if perr != nil {
			return nil, perr
		}
		k, err = mech.ParseMLKEMPublicKey(size, v)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAttributeValueInvalid, err)
	}
	return k, nil
}

// checkSignContext checks CK_SIGN_ADDITIONAL_CONTEXT of CKM_ML_DSA.
func checkSignContext(m Mechanism) error {
	if len(m.Context) > 255 {
		return fmt.Errorf("%w: ML-DSA context of %d bytes (at most 255)", mech.ErrParam, len(m.Context))
	}
	switch m.Hedge {
	case ck.CKH_HEDGE_PREFERRED, ck.CKH_HEDGE_REQUIRED, ck.CKH_DETERMINISTIC_REQUIRED:
		return nil
	}
	return fmt.Errorf("%w: hedgeVariant %d", mech.ErrParam, m.Hedge)
}

// EncapsulateKey is C_EncapsulateKey with CKM_ML_KEM: it encapsulates a
// fresh shared secret to the ML-KEM public key pub and makes it a secret
// key from tmpl (CKK_GENERIC_SECRET unless CKA_KEY_TYPE says CKK_AES; the
// 32-byte secret, or its first CKA_VALUE_LEN bytes), generated inside the
// HSM: CKA_LOCAL is false, CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE
// follow the template. It returns the new key and the ciphertext.
func (d *Device) EncapsulateKey(ctx context.Context, sid SessionID, pub ObjectID, m Mechanism, tmpl Template) (ObjectID, []byte, error) {
	const op = "key.encapsulate"
	s, p, pk, err := d.useKey(op, sid, pub)
	if err != nil {
		return 0, nil, err
	}
	var ct []byte
	var o *Object
	if _, err = d.prepare(op, p, FnEncapsulate, pk, m); err == nil {
		var secret []byte
		secret, ct = pk.key.pub.(mech.MLKEMEncapsulationKey).Encapsulate()
		o, err = kemSecret(secret, tmpl, origin{creator: p, generated: true, kem: true})
	}
	if err == nil {
		err = d.publish(ctx, s, p, o)
	}
	if err != nil {
		err = asOpErr(op, err)
		d.audit(sid, p, op, 0, "public key "+pub.String(), err)
		return 0, nil, err
	}
	d.audit(sid, p, op, o.id, "public key "+pub.String(), nil)
	return o.id, ct, nil
}

// DecapsulateKey is C_DecapsulateKey with CKM_ML_KEM: the shared secret of
// ciphertext under the ML-KEM private key priv, as a secret key from tmpl
// (see EncapsulateKey). It is made from priv as a derived key is from its
// base: with priv's CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE, and
// bound as derived keys are when priv is another user's (shared) key.
func (d *Device) DecapsulateKey(ctx context.Context, sid SessionID, priv ObjectID, m Mechanism, ciphertext []byte, tmpl Template) (ObjectID, error) {
	const op = "key.decapsulate"
	s, p, sk, err := d.useKey(op, sid, priv)
	if err != nil {
		return 0, err
	}
	var o *Object
	if _, err = d.prepare(op, p, FnDecapsulate, sk, m); err == nil {
		var secret []byte
		if secret, err = mech.DecapsulateMLKEM(sk.key.priv.(mech.MLKEMDecapsulationKey), ciphertext); err != nil {
			err = mechErr(err, FnDecrypt)
		} else {
			o, err = kemSecret(secret, tmpl, origin{creator: p, generated: true, base: sk})
		}
	}
	if err == nil {
		err = d.publish(ctx, s, p, o)
	}
	if err != nil {
		err = asOpErr(op, err)
		d.audit(sid, p, op, 0, "private key "+priv.String(), err)
		return 0, err
	}
	d.audit(sid, p, op, o.id, "private key "+priv.String(), nil)
	return o.id, nil
}

// kemSecret makes the secret key of an encapsulation or decapsulation.
func kemSecret(secret []byte, tmpl Template, from origin) (*Object, error) {
	if cv, ok := tmpl.Get(ck.CKA_CLASS); ok && (!checkValue(ck.CKA_CLASS, cv) || ck.ObjectClass(decodeUlong(cv)) != ck.CKO_SECRET_KEY) {
		return nil, fmt.Errorf("%w: the shared secret is a secret key (CKO_SECRET_KEY)", ErrTemplateInconsistent)
	}
	kt := ck.CKK_GENERIC_SECRET
	if kv, ok := tmpl.Get(ck.CKA_KEY_TYPE); ok {
		if !checkValue(ck.CKA_KEY_TYPE, kv) {
			return nil, fmt.Errorf("%w: CKA_KEY_TYPE", ErrAttributeValueInvalid)
		}
		kt = ck.KeyType(decodeUlong(kv))
	}
	if vl, ok := tmpl.Get(ck.CKA_VALUE_LEN); ok {
		n := decodeUlong(vl)
		if n == 0 || n > uint(len(secret)) {
			return nil, fmt.Errorf("%w: CKA_VALUE_LEN %d of a %d-byte shared secret", ErrTemplateInconsistent, n, len(secret))
		}
		secret = secret[:n]
	}
	km, err := secretMaterial(kt, secret)
	if err != nil {
		return nil, err
	}
	return buildKey(ck.CKO_SECRET_KEY, kt, km, tmpl, from, map[ck.AttributeType]bool{ck.CKA_VALUE_LEN: true})
}
