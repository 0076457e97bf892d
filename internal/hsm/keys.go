package hsm

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// origin tells buildKey who makes an object and how it came to be, which
// fixes CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE and
// CKA_KEY_GEN_MECHANISM, and what its template may say (admit, constrain).
type origin struct {
	creator   *principal       // who makes it
	generated bool             // made inside the HSM (generate, or derive from a local base)
	mechanism ck.MechanismType // the generating mechanism, if generated
	base      *Object          // derived keys: the base key
	unwrapper *Object          // unwrapped keys: the unwrapping key
	sealed    bool             // unwrapped with the unwrapping side of a trusted key (Device.opensTrusted)
	kem       bool             // a shared secret of C_EncapsulateKey: made inside the HSM, yet not CKA_LOCAL
}

// defaults are applied before the caller's template, per PKCS#11 v3.0 and
// CloudHSM: keys are private and sensitive, extractable until said
// otherwise, and may do what their type can.
func defaults(o *Object) {
	o.setBool(ck.CKA_TOKEN, false)
	o.setBool(ck.CKA_MODIFIABLE, true)
	o.setBool(ck.CKA_COPYABLE, true)
	o.setBool(ck.CKA_DESTROYABLE, true)
	o.setAttr(ck.CKA_LABEL, []byte{})
	o.setBool(ck.CKA_PRIVATE, o.class != ck.CKO_PUBLIC_KEY)
	switch o.class {
	case ck.CKO_SECRET_KEY, ck.CKO_PRIVATE_KEY, ck.CKO_PUBLIC_KEY:
		o.setUlong(ck.CKA_KEY_TYPE, uint(o.keyType))
		o.setAttr(ck.CKA_ID, []byte{})
		o.setBool(ck.CKA_DERIVE, false)
	}
	aes := o.keyType == ck.CKK_AES
	rsaKey := o.keyType == ck.CKK_RSA
	kem := o.keyType == ck.CKK_ML_KEM
	switch o.class {
	case ck.CKO_SECRET_KEY:
		o.setBool(ck.CKA_SENSITIVE, true)
		o.setBool(ck.CKA_EXTRACTABLE, true)
		o.setBool(ck.CKA_ENCRYPT, aes)
		o.setBool(ck.CKA_DECRYPT, aes)
		o.setBool(ck.CKA_WRAP, aes)
		o.setBool(ck.CKA_UNWRAP, aes)
		o.setBool(ck.CKA_SIGN, true)
		o.setBool(ck.CKA_VERIFY, true)
		o.setBool(ck.CKA_TRUSTED, false)
		o.setBool(ck.CKA_WRAP_WITH_TRUSTED, false)
	case ck.CKO_PRIVATE_KEY:
		o.setBool(ck.CKA_SENSITIVE, true)
		o.setBool(ck.CKA_EXTRACTABLE, true)
		o.setBool(ck.CKA_DECRYPT, rsaKey)
		o.setBool(ck.CKA_UNWRAP, rsaKey)
		o.setBool(ck.CKA_SIGN, !kem)
		o.setBool(ck.CKA_SIGN_RECOVER, false)
		o.setBool(ck.CKA_WRAP_WITH_TRUSTED, false)
		o.setBool(ck.CKA_ALWAYS_AUTHENTICATE, false)
		o.setAttr(ck.CKA_SUBJECT, []byte{})
	case ck.CKO_PUBLIC_KEY:
		o.setBool(ck.CKA_ENCRYPT, rsaKey)
		o.setBool(ck.CKA_WRAP, rsaKey)
		o.setBool(ck.CKA_VERIFY, !kem)
		o.setBool(ck.CKA_VERIFY_RECOVER, false)
		o.setBool(ck.CKA_TRUSTED, false)
		o.setAttr(ck.CKA_SUBJECT, []byte{})
	case ck.CKO_CERTIFICATE:
		o.setBool(ck.CKA_TRUSTED, false)
		o.setUlong(ck.CKA_CERTIFICATE_CATEGORY, 0)
	}
	if kem { // PKCS#11 v3.2: what an ML-KEM key does
		if o.class == ck.CKO_PUBLIC_KEY {
			o.setBool(ck.CKA_ENCAPSULATE, true)
		} else {
			o.setBool(ck.CKA_DECAPSULATE, true)
		}
	}
}

// applyTemplate sets the caller's attributes on a new object. Every
// creation template passes through it, and each attribute through admit.
// skip lists attributes the caller's template may carry that were consumed
// already (key material and its public parts).
func applyTemplate(o *Object, tmpl Template, skip map[ck.AttributeType]bool, from origin) error {
	for _, a := range tmpl {
		switch {
		case skip[a.Type]:
			continue
		case a.Type == ck.CKA_CLASS:
			if decodeUlong(a.Value) != uint(o.class) || !checkValue(a.Type, a.Value) {
				return fmt.Errorf("%w: CKA_CLASS", ErrTemplateInconsistent)
			}
		case a.Type == ck.CKA_KEY_TYPE:
			if decodeUlong(a.Value) != uint(o.keyType) || !checkValue(a.Type, a.Value) {
				return fmt.Errorf("%w: CKA_KEY_TYPE", ErrTemplateInconsistent)
			}
		case !validFor(o.class, a.Type):
			return fmt.Errorf("%w: %v", ErrAttributeTypeInvalid, a.Type)
		case computedAttrs[a.Type]:
			return fmt.Errorf("%w: %v is set by the HSM", ErrAttributeReadOnly, a.Type)
		case sensitiveAttrs[a.Type] && o.isKey() || a.Type == ck.CKA_VALUE_LEN || a.Type == ck.CKA_MODULUS_BITS ||
			a.Type == ck.CKA_MODULUS || a.Type == ck.CKA_PUBLIC_EXPONENT || a.Type == ck.CKA_EC_POINT:
			return fmt.Errorf("%w: %v is fixed by the key material", ErrTemplateInconsistent, a.Type)
		case !checkValue(a.Type, a.Value):
			return fmt.Errorf("%w: %v", ErrAttributeValueInvalid, a.Type)
		default:
			if err := admit(a, from); err != nil {
				return err
			}
			o.setAttr(a.Type, bytes.Clone(a.Value))
		}
	}
	return nil
}

// finish sets the computed attributes of a new key.
func finish(o *Object, from origin) {
	if !o.isKey() {
		return
	}
	o.setBool(ck.CKA_LOCAL, from.generated && from.base == nil && !from.kem)
	mech := Unavailable
	if from.generated && from.base == nil && !from.kem {
		mech = uint(from.mechanism)
	}
	o.setUlong(ck.CKA_KEY_GEN_MECHANISM, mech)
	if o.class == ck.CKO_PUBLIC_KEY {
		return
	}
	sensitive, extractable := o.has(fSensitive), o.has(fExtractable)
	switch {
	case from.base != nil:
		o.setBool(ck.CKA_ALWAYS_SENSITIVE, from.base.has(fAlwaysSensitive) && sensitive)
		o.setBool(ck.CKA_NEVER_EXTRACTABLE, from.base.has(fNeverExtractable) && !extractable)
	case from.generated:
		o.setBool(ck.CKA_ALWAYS_SENSITIVE, sensitive)
		o.setBool(ck.CKA_NEVER_EXTRACTABLE, !extractable)
	default:
		o.setBool(ck.CKA_ALWAYS_SENSITIVE, false)
		o.setBool(ck.CKA_NEVER_EXTRACTABLE, false)
	}
}

// buildKey assembles a new key object from material and template.
func buildKey(class ck.ObjectClass, kt ck.KeyType, km *keyMaterial, tmpl Template, from origin, skip map[ck.AttributeType]bool) (*Object, error) {
	if err := admitSecret(km, from); err != nil {
		return nil, err
	}
	o := &Object{class: class, keyType: kt, attrs: map[ck.AttributeType][]byte{}, key: km}
	o.setUlong(ck.CKA_CLASS, uint(class))
	defaults(o)
	if class == ck.CKO_PUBLIC_KEY {
		km = &keyMaterial{pub: km.pub}
		o.key = km
	}
	o.setPublicAttrs()
	importedKeyID(o, tmpl, from)
	if err := applyTemplate(o, tmpl, skip, from); err != nil {
		return nil, err
	}
	constrain(o, from)
	finish(o, from)
	return o, nil
}

// publish stores a new object (durably if it is a token object) and makes it
// visible. Only id allocation is serialized: concurrent creations commit to
// the store together (group commit), so durable key creation scales with
// callers. The caller holds no lock.
func (d *Device) publish(ctx context.Context, s *session, p *principal, o *Object) error {
	d.mu.Lock()
	if d.users[p.name] == nil { // deleted while the key was being made
		d.mu.Unlock()
		return ErrNotLoggedIn
	}
	if len(d.objects)+len(d.reserved) >= d.cfg.MaxObjects {
		d.mu.Unlock()
		return ErrDeviceMemory
	}
	id, err := d.allocObjectID(ctx, p, o)
	if err == nil {
		d.reserved[id] = struct{}{}
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	defer func() {
		d.mu.Lock()
		delete(d.reserved, id)
		d.mu.Unlock()
	}()
	o.id = id
	o.owner = p.name
	if o.Token() {
		data, err := o.marshal()
		if err != nil {
			return err
		}
		if err := d.cfg.Store.Put(ctx, RecordObject, id.String(), data); err != nil {
			return fmt.Errorf("%w: store: %w", ErrDevice, err)
		}
	} else {
		o.session = s.id
		s.mu.Lock()
		if s.objects == nil { // closed meanwhile
			s.mu.Unlock()
			return ErrSessionHandleInvalid
		}
		s.objects[id] = struct{}{}
		s.mu.Unlock()
	}
	d.mu.Lock()
	d.putObject(id, o)
	d.mu.Unlock()
	return nil
}

// CreateObject makes an object from a template, as C_CreateObject: a secret
// key from CKA_VALUE, a private or public key from its components, a data or
// certificate object.
func (d *Device) CreateObject(ctx context.Context, sid SessionID, tmpl Template) (ObjectID, error) {
	const op = "object.create"
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, err
	}
	o, err := objectFromTemplate(tmpl, p)
	if err == nil {
		err = d.publish(ctx, s, p, o)
	}
	if err != nil {
		err = &Error{Op: op, Err: err}
		d.audit(sid, p, op, 0, "", err)
		return 0, err
	}
	d.audit(sid, p, op, o.id, "", nil)
	return o.id, nil
}

func objectFromTemplate(tmpl Template, p *principal) (*Object, error) {
	cv, ok := tmpl.Get(ck.CKA_CLASS)
	if !ok || !checkValue(ck.CKA_CLASS, cv) {
		return nil, fmt.Errorf("%w: CKA_CLASS", ErrTemplateIncomplete)
	}
	class := ck.ObjectClass(decodeUlong(cv))
	var kt ck.KeyType
	if class == ck.CKO_SECRET_KEY || class == ck.CKO_PRIVATE_KEY || class == ck.CKO_PUBLIC_KEY {
		v, ok := tmpl.Get(ck.CKA_KEY_TYPE)
		if !ok || !checkValue(ck.CKA_KEY_TYPE, v) {
			return nil, fmt.Errorf("%w: CKA_KEY_TYPE", ErrTemplateIncomplete)
		}
		kt = ck.KeyType(decodeUlong(v))
	}
	keyParts := map[ck.AttributeType]bool{}
	var km *keyMaterial
	var err error
	switch class {
	case ck.CKO_SECRET_KEY:
		v, ok := tmpl.Get(ck.CKA_VALUE)
		if !ok {
			return nil, fmt.Errorf("%w: CKA_VALUE", ErrTemplateIncomplete)
		}
		if km, err = secretMaterial(kt, bytes.Clone(v)); err != nil {
			return nil, err
		}
		if vl, ok := tmpl.Get(ck.CKA_VALUE_LEN); ok && decodeUlong(vl) != uint(len(v)) {
			return nil, fmt.Errorf("%w: CKA_VALUE_LEN does not match CKA_VALUE", ErrTemplateInconsistent)
		}
		keyParts[ck.CKA_VALUE], keyParts[ck.CKA_VALUE_LEN] = true, true
	case ck.CKO_PRIVATE_KEY:
		priv, err := privateFromTemplate(kt, tmpl)
		if err != nil {
			return nil, err
		}
		if km, err = privateMaterial(priv); err != nil {
			return nil, err
		}
		for _, t := range []ck.AttributeType{ck.CKA_MODULUS, ck.CKA_PUBLIC_EXPONENT, ck.CKA_PRIVATE_EXPONENT,
			ck.CKA_PRIME_1, ck.CKA_PRIME_2, ck.CKA_EXPONENT_1, ck.CKA_EXPONENT_2, ck.CKA_COEFFICIENT,
			ck.CKA_EC_PARAMS, ck.CKA_VALUE, ck.CKA_EC_POINT, ck.CKA_PARAMETER_SET, ck.CKA_SEED} {
			keyParts[t] = true
		}
	case ck.CKO_PUBLIC_KEY:
		pub, err := publicFromTemplate(kt, tmpl)
		if err != nil {
			return nil, err
		}
		if km, err = publicMaterial(pub); err != nil {
			return nil, err
		}
		for _, t := range []ck.AttributeType{ck.CKA_MODULUS, ck.CKA_PUBLIC_EXPONENT, ck.CKA_EC_PARAMS, ck.CKA_EC_POINT, ck.CKA_MODULUS_BITS,
			ck.CKA_PARAMETER_SET, ck.CKA_VALUE} {
			keyParts[t] = true
		}
	case ck.CKO_DATA, ck.CKO_CERTIFICATE:
		o := &Object{class: class, attrs: map[ck.AttributeType][]byte{}}
		o.setUlong(ck.CKA_CLASS, uint(class))
		defaults(o)
		if class == ck.CKO_CERTIFICATE {
			if _, ok := tmpl.Get(ck.CKA_CERTIFICATE_TYPE); !ok {
				return nil, fmt.Errorf("%w: CKA_CERTIFICATE_TYPE", ErrTemplateIncomplete)
			}
		}
		if err := applyTemplate(o, tmpl, nil, origin{creator: p}); err != nil {
			return nil, err
		}
		return o, nil
	default:
		return nil, fmt.Errorf("%w: object class %d", ErrAttributeValueInvalid, class)
	}
	return buildKey(class, kt, km, tmpl, origin{creator: p}, keyParts)
}

// ImportPrivateKey makes a private key object from PKCS#8 DER.
func (d *Device) ImportPrivateKey(ctx context.Context, sid SessionID, pkcs8 []byte, tmpl Template) (ObjectID, error) {
	return d.importKey(ctx, sid, "key.import", func(p *principal) (*Object, error) {
		priv, err := mech.ParsePKCS8(pkcs8)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#8: %w", ErrArgumentsBad, err)
		}
		km, err := privateMaterial(priv)
		if err != nil {
			return nil, err
		}
		return buildKey(ck.CKO_PRIVATE_KEY, keyTypeOf(priv), km, tmpl, origin{creator: p}, nil)
	})
}

// ImportPublicKey makes a public key object from SubjectPublicKeyInfo DER.
func (d *Device) ImportPublicKey(ctx context.Context, sid SessionID, spki []byte, tmpl Template) (ObjectID, error) {
	return d.importKey(ctx, sid, "key.import", func(p *principal) (*Object, error) {
		pub, err := x509.ParsePKIXPublicKey(spki)
		if err != nil {
			return nil, fmt.Errorf("%w: SPKI: %w", ErrArgumentsBad, err)
		}
		km, err := publicMaterial(pub)
		if err != nil {
			return nil, err
		}
		return buildKey(ck.CKO_PUBLIC_KEY, keyTypeOf(pub), km, tmpl, origin{creator: p}, nil)
	})
}

func (d *Device) importKey(ctx context.Context, sid SessionID, op string, build func(*principal) (*Object, error)) (ObjectID, error) {
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, err
	}
	o, err := build(p)
	if err == nil {
		err = d.publish(ctx, s, p, o)
	}
	if err != nil {
		err = &Error{Op: op, Err: err}
		d.audit(sid, p, op, 0, "", err)
		return 0, err
	}
	d.audit(sid, p, op, o.id, "", nil)
	return o.id, nil
}
