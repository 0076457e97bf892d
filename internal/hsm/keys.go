package hsm

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// origin tells newObject how a key came to be, which fixes CKA_LOCAL,
// CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE and CKA_KEY_GEN_MECHANISM.
type origin struct {
	generated bool             // made inside the HSM (generate, or derive from a local base)
	mechanism ck.MechanismType // the generating mechanism, if generated
	base      *Object          // derived keys: the base key
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
		o.setBool(ck.CKA_SIGN, true)
		o.setBool(ck.CKA_SIGN_RECOVER, false)
		o.setBool(ck.CKA_WRAP_WITH_TRUSTED, false)
		o.setBool(ck.CKA_ALWAYS_AUTHENTICATE, false)
		o.setAttr(ck.CKA_SUBJECT, []byte{})
	case ck.CKO_PUBLIC_KEY:
		o.setBool(ck.CKA_ENCRYPT, rsaKey)
		o.setBool(ck.CKA_WRAP, rsaKey)
		o.setBool(ck.CKA_VERIFY, true)
		o.setBool(ck.CKA_VERIFY_RECOVER, false)
		o.setBool(ck.CKA_TRUSTED, false)
		o.setAttr(ck.CKA_SUBJECT, []byte{})
	case ck.CKO_CERTIFICATE:
		o.setBool(ck.CKA_TRUSTED, false)
		o.setUlong(ck.CKA_CERTIFICATE_CATEGORY, 0)
	}
}

// applyTemplate sets the caller's attributes on a new object. skip lists
// attributes the caller's template may carry that were consumed already
// (key material and its public parts).
func applyTemplate(o *Object, tmpl Template, skip map[ck.AttributeType]bool) error {
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
	o.setBool(ck.CKA_LOCAL, from.generated && from.base == nil)
	mech := Unavailable
	if from.generated && from.base == nil {
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
	o := &Object{class: class, keyType: kt, attrs: map[ck.AttributeType][]byte{}, key: km}
	o.setUlong(ck.CKA_CLASS, uint(class))
	defaults(o)
	if class == ck.CKO_PUBLIC_KEY {
		km = &keyMaterial{pub: km.pub}
		o.key = km
	}
	o.setPublicAttrs()
	if err := applyTemplate(o, tmpl, skip); err != nil {
		return nil, err
	}
	finish(o, from)
	return o, nil
}

// publish stores a new object (durably if it is a token object) and makes it
// visible. Only id allocation is serialized: concurrent creations commit to
// the store together (group commit), so durable key creation scales with
// callers. The caller holds no lock.
func (d *Device) publish(ctx context.Context, s *session, p *principal, o *Object) error {
	d.mu.Lock()
	if len(d.objects)+len(d.reserved) >= d.cfg.MaxObjects {
		d.mu.Unlock()
		return ErrDeviceMemory
	}
	id, err := d.newObjectID()
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
	d.objects[id] = o
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
	o, err := objectFromTemplate(tmpl)
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

func objectFromTemplate(tmpl Template) (*Object, error) {
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
			ck.CKA_EC_PARAMS, ck.CKA_VALUE, ck.CKA_EC_POINT} {
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
		for _, t := range []ck.AttributeType{ck.CKA_MODULUS, ck.CKA_PUBLIC_EXPONENT, ck.CKA_EC_PARAMS, ck.CKA_EC_POINT, ck.CKA_MODULUS_BITS} {
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
		if err := applyTemplate(o, tmpl, nil); err != nil {
			return nil, err
		}
		return o, nil
	default:
		return nil, fmt.Errorf("%w: object class %d", ErrAttributeValueInvalid, class)
	}
	return buildKey(class, kt, km, tmpl, origin{}, keyParts)
}

// ImportPrivateKey makes a private key object from PKCS#8 DER.
func (d *Device) ImportPrivateKey(ctx context.Context, sid SessionID, pkcs8 []byte, tmpl Template) (ObjectID, error) {
	return d.importKey(ctx, sid, "key.import", func() (*Object, error) {
		priv, err := x509.ParsePKCS8PrivateKey(pkcs8)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#8: %w", ErrArgumentsBad, err)
		}
		km, err := privateMaterial(priv)
		if err != nil {
			return nil, err
		}
		return buildKey(ck.CKO_PRIVATE_KEY, keyTypeOf(priv), km, tmpl, origin{}, nil)
	})
}

// ImportPublicKey makes a public key object from SubjectPublicKeyInfo DER.
func (d *Device) ImportPublicKey(ctx context.Context, sid SessionID, spki []byte, tmpl Template) (ObjectID, error) {
	return d.importKey(ctx, sid, "key.import", func() (*Object, error) {
		pub, err := x509.ParsePKIXPublicKey(spki)
		if err != nil {
			return nil, fmt.Errorf("%w: SPKI: %w", ErrArgumentsBad, err)
		}
		km, err := publicMaterial(pub)
		if err != nil {
			return nil, err
		}
		return buildKey(ck.CKO_PUBLIC_KEY, keyTypeOf(pub), km, tmpl, origin{}, nil)
	})
}

func (d *Device) importKey(ctx context.Context, sid SessionID, op string, build func() (*Object, error)) (ObjectID, error) {
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, err
	}
	o, err := build()
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

// ObjectInfo is what a caller may learn of an object without reading
// attributes one by one.
type ObjectInfo struct {
	ID         ObjectID
	Class      ck.ObjectClass
	KeyType    ck.KeyType
	Label      string
	Token      bool
	Owner      string
	SharedWith []string
}

func (o *Object) info() ObjectInfo {
	return ObjectInfo{ID: o.id, Class: o.class, KeyType: o.keyType, Label: o.Label(), Token: o.Token(), Owner: o.owner, SharedWith: slices.Clone(o.shared)}
}

// visible reports whether p may see o: crypto users see the keys they own or
// that are shared with them, admins and appliance users see every token
// object (to manage and clone them, not to use them), and a session object
// is seen only in its session.
func visible(s *session, p *principal, o *Object) bool {
	if o.session != 0 && o.session != s.id {
		return false
	}
	if p == nil {
		return !o.has(fPrivate) && o.session == s.id
	}
	if p.role == RoleCryptoUser {
		return o.owner == p.name || o.sharedWith(p.name)
	}
	return o.session == 0
}

// lookup finds an object the session may see.
func (d *Device) lookup(s *session, p *principal, id ObjectID) (*Object, error) {
	d.mu.RLock()
	o := d.objects[id]
	d.mu.RUnlock()
	if o == nil || !visible(s, p, o) {
		return nil, ErrObjectHandleInvalid
	}
	return o, nil
}

// FindObjects returns the ids of the visible objects matching tmpl.
func (d *Device) FindObjects(sid SessionID, tmpl Template) ([]ObjectID, error) {
	s, p, err := d.whoami(sid)
	if err != nil {
		return nil, &Error{Op: "object.find", Err: err}
	}
	var out []ObjectID
	d.mu.RLock()
	for id, o := range d.objects {
		if visible(s, p, o) && o.matches(tmpl) {
			out = append(out, id)
		}
	}
	d.mu.RUnlock()
	slices.Sort(out)
	return out, nil
}

// Info describes one visible object.
func (d *Device) Info(sid SessionID, id ObjectID) (ObjectInfo, error) {
	s, p, err := d.whoami(sid)
	if err == nil {
		var o *Object
		if o, err = d.lookup(s, p, id); err == nil {
			return o.info(), nil
		}
	}
	return ObjectInfo{}, &Error{Op: "object.info", Err: err}
}

// AttributeValue is one answer of GetAttributes: the value, or why there is
// none (ErrAttributeSensitive or ErrAttributeTypeInvalid).
type AttributeValue struct {
	Type  ck.AttributeType
	Value []byte
	Err   error
}

// GetAttributes reads attributes as C_GetAttributeValue does: every type gets
// an answer, and the returned error is the first refusal (sensitive before
// invalid), with the other values still filled in.
func (d *Device) GetAttributes(sid SessionID, id ObjectID, types []ck.AttributeType) ([]AttributeValue, error) {
	const op = "object.get-attributes"
	s, p, err := d.whoami(sid)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	o, err := d.lookup(s, p, id)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	out := make([]AttributeValue, len(types))
	var first error
	for i, t := range types {
		v, err := o.attribute(t)
		out[i] = AttributeValue{Type: t, Value: v, Err: err}
		if err != nil && (first == nil || err == ErrAttributeSensitive && first != ErrAttributeSensitive) {
			first = err
		}
	}
	if first != nil {
		return out, &Error{Op: op, Err: fmt.Errorf("%w", first)}
	}
	return out, nil
}

// SetAttributes changes attributes as C_SetAttributeValue does. Only the
// owner may change a key; the one-way attributes move only their way.
func (d *Device) SetAttributes(ctx context.Context, sid SessionID, id ObjectID, tmpl Template) error {
	const op = "object.set-attributes"
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return err
	}
	err = d.update(ctx, s, p, id, func(o *Object) error {
		if !o.has(fModifiable) {
			return fmt.Errorf("%w: CKA_MODIFIABLE is false", ErrActionProhibited)
		}
		for _, a := range tmpl {
			if err := setOne(o, p, a); err != nil {
				return err
			}
		}
		return nil
	})
	d.audit(sid, p, op, id, "", err)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	return nil
}

func setOne(o *Object, p *principal, a Attribute) error {
	switch {
	case !validFor(o.class, a.Type):
		return fmt.Errorf("%w: %v", ErrAttributeTypeInvalid, a.Type)
	case !checkValue(a.Type, a.Value):
		return fmt.Errorf("%w: %v", ErrAttributeValueInvalid, a.Type)
	case readOnlyAfterCreate[a.Type] && !(o.class == ck.CKO_DATA && a.Type == ck.CKA_VALUE):
		if cur, ok := o.attrs[a.Type]; ok && bytes.Equal(cur, a.Value) {
			return nil // setting the current value is allowed
		}
		return fmt.Errorf("%w: %v", ErrAttributeReadOnly, a.Type)
	}
	v := decodeBool(a.Value)
	switch a.Type {
	case ck.CKA_SENSITIVE:
		if o.has(fSensitive) && !v {
			return fmt.Errorf("%w: CKA_SENSITIVE can only change from false to true", ErrAttributeReadOnly)
		}
	case ck.CKA_EXTRACTABLE:
		if !o.has(fExtractable) && v {
			return fmt.Errorf("%w: CKA_EXTRACTABLE can only change from true to false", ErrAttributeReadOnly)
		}
	case ck.CKA_WRAP_WITH_TRUSTED:
		if o.has(fWrapWithTrusted) && !v {
			return fmt.Errorf("%w: CKA_WRAP_WITH_TRUSTED can only change from false to true", ErrAttributeReadOnly)
		}
	case ck.CKA_TRUSTED:
		// Only the security officer may mark a key trusted (PKCS#11
		// §4.8); a crypto user may only clear it.
		if v && !o.has(fTrusted) {
			return fmt.Errorf("%w: only an admin may set CKA_TRUSTED", ErrAttributeReadOnly)
		}
	}
	o.setAttr(a.Type, bytes.Clone(a.Value))
	return nil
}

// update applies change to a copy of an object the principal owns, persists
// it if it is a token object, and publishes it.
func (d *Device) update(ctx context.Context, s *session, p *principal, id ObjectID, change func(*Object) error) error {
	d.createMu.Lock() // serializes writers of objects, so no update is lost
	defer d.createMu.Unlock()
	o, err := d.lookup(s, p, id)
	if err != nil {
		return err
	}
	if o.owner != p.name {
		return ErrNotOwner
	}
	n := o.clone()
	if err := change(n); err != nil {
		return err
	}
	if n.Token() {
		data, err := n.marshal()
		if err != nil {
			return err
		}
		if err := d.cfg.Store.Put(ctx, RecordObject, id.String(), data); err != nil {
			return fmt.Errorf("%w: store: %w", ErrDevice, err)
		}
	}
	d.mu.Lock()
	d.objects[id] = n
	d.mu.Unlock()
	return nil
}

// DestroyObject deletes an object its owner may destroy.
func (d *Device) DestroyObject(ctx context.Context, sid SessionID, id ObjectID) error {
	const op = "object.destroy"
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return err
	}
	err = d.destroy(ctx, s, p, id)
	if aerr := d.auditSync(ctx, sid, p, op, id, "", err); aerr != nil && err == nil {
		d.log.Warn("audit", "op", op, "err", aerr)
	}
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	return nil
}

func (d *Device) destroy(ctx context.Context, s *session, p *principal, id ObjectID) error {
	d.createMu.Lock()
	defer d.createMu.Unlock()
	o, err := d.lookup(s, p, id)
	if err != nil {
		return err
	}
	if o.owner != p.name {
		return ErrNotOwner
	}
	if !o.has(fDestroyable) {
		return fmt.Errorf("%w: CKA_DESTROYABLE is false", ErrActionProhibited)
	}
	if o.Token() {
		if err := d.cfg.Store.Delete(ctx, RecordObject, id.String()); err != nil {
			return fmt.Errorf("%w: store: %w", ErrDevice, err)
		}
	} else {
		s.mu.Lock()
		delete(s.objects, id)
		s.mu.Unlock()
	}
	d.mu.Lock()
	delete(d.objects, id)
	d.mu.Unlock()
	return nil
}

// ShareKey lets another crypto user use a token key. Only the owner shares.
func (d *Device) ShareKey(ctx context.Context, sid SessionID, id ObjectID, user string) error {
	return d.setSharing(ctx, sid, id, user, true)
}

// UnshareKey withdraws a share.
func (d *Device) UnshareKey(ctx context.Context, sid SessionID, id ObjectID, user string) error {
	return d.setSharing(ctx, sid, id, user, false)
}

func (d *Device) setSharing(ctx context.Context, sid SessionID, id ObjectID, user string, share bool) error {
	op := "key.share"
	if !share {
		op = "key.unshare"
	}
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return err
	}
	d.mu.RLock()
	u := d.users[user]
	d.mu.RUnlock()
	switch {
	case u == nil:
		err = fmt.Errorf("%w: %q", ErrUserNotFound, user)
	case u.Role != RoleCryptoUser || user == p.name:
		err = fmt.Errorf("%w: keys are shared with other crypto users", ErrArgumentsBad)
	default:
		err = d.update(ctx, s, p, id, func(o *Object) error {
			if !o.Token() || !o.isKey() {
				return fmt.Errorf("%w: only token keys are shared", ErrArgumentsBad)
			}
			i, found := slices.BinarySearch(o.shared, user)
			switch {
			case share && !found:
				o.shared = slices.Insert(o.shared, i, user)
			case !share && found:
				o.shared = slices.Delete(o.shared, i, i+1)
			case !share:
				return ErrNotShared
			}
			return nil
		})
	}
	if aerr := d.auditSync(ctx, sid, p, op, id, user, err); aerr != nil && err == nil {
		d.log.Warn("audit", "op", op, "err", aerr)
	}
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	return nil
}
