package hsm

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/coffer-hsm/coffer/internal/ck"
)

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
		if visible(s, p, o) && o.matches(p, tmpl) {
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
		v, err := o.attribute(p, t)
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
// owner may change a key; the one-way attributes move only their way. An
// admin may change CKA_TRUSTED of any token object it sees, and nothing else
// (mayTrust).
func (d *Device) SetAttributes(ctx context.Context, sid SessionID, id ObjectID, tmpl Template) error {
	const op = "object.set-attributes"
	if s, p, err := d.whoami(sid); err == nil && p != nil && p.role == RoleAdmin {
		return d.adminSetAttributes(ctx, op, s, sid, p, id, tmpl)
	}
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

// adminSetAttributes is an admin's C_SetAttributeValue: CKA_TRUSTED only,
// audited durably.
func (d *Device) adminSetAttributes(ctx context.Context, op string, s *session, sid SessionID, p *principal, id ObjectID, tmpl Template) error {
	err := d.modify(ctx, s, p, id, false, func(o *Object) error {
		if !o.has(fModifiable) {
			return fmt.Errorf("%w: CKA_MODIFIABLE is false", ErrActionProhibited)
		}
		for _, a := range tmpl {
			if a.Type != ck.CKA_TRUSTED {
				return fmt.Errorf("%w: an admin changes only CKA_TRUSTED of a user's object, not %v", ErrRoleNotPermitted, a.Type)
			}
			if err := setOne(o, p, a); err != nil {
				return err
			}
		}
		return nil
	})
	if aerr := d.auditSync(ctx, sid, p, op, id, "", err); aerr != nil && err == nil {
		d.log.Warn("audit", "op", op, "err", aerr)
	}
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
		if v != o.has(fTrusted) {
			if err := mayTrust(p); err != nil {
				return err
			}
		}
	}
	o.setAttr(a.Type, bytes.Clone(a.Value))
	return nil
}

// update applies change to a copy of an object the principal owns, persists
// it if it is a token object, and publishes it.
func (d *Device) update(ctx context.Context, s *session, p *principal, id ObjectID, change func(*Object) error) error {
	return d.modify(ctx, s, p, id, true, change)
}

// modify is update; ownerOnly false lets a principal change an object it
// sees but does not own (an admin's CKA_TRUSTED).
func (d *Device) modify(ctx context.Context, s *session, p *principal, id ObjectID, ownerOnly bool, change func(*Object) error) error {
	defer d.writes.lockObject(id)() // serializes the writers of the object, so no update is lost
	o, err := d.lookup(s, p, id)
	if err != nil {
		return err
	}
	if ownerOnly && o.owner != p.name {
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
	defer d.mu.Unlock()
	if _, ok := d.objects[id]; !ok { // a session object whose session closed meanwhile
		return ErrObjectHandleInvalid
	}
	d.putObject(id, n)
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
	defer d.writes.lockObject(id)()
	o, err := d.lookup(s, p, id)
	if err != nil {
		return err
	}
	if o.owner != p.name {
		return ErrNotOwner
	}
	if err := mayDestroy(o); err != nil {
		return err
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
	d.dropObject(id)
	d.mu.Unlock()
	return nil
}

// putObject makes o the object id names in the device's table, replacing
// the one there, and keeps the trust index in step (Device.trusted). The
// caller holds d.mu for writing.
func (d *Device) putObject(id ObjectID, o *Object) {
	d.dropObject(id)
	d.objects[id] = o
	if o.Token() {
		d.tokenObjects++
	}
	if k, ok := trustedPublic(o); ok {
		d.trusted[k]++
	}
}

// Holdings returns how many token objects and users the device holds, kept
// as they change (no scan: NodeInfo and every metrics scrape ask).
func (d *Device) Holdings() (tokenObjects, users int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.tokenObjects, len(d.users)
}

// dropObject removes the object id names from the device's table, if it is
// there, and from the trust index. The caller holds d.mu for writing.
func (d *Device) dropObject(id ObjectID) {
	old, ok := d.objects[id]
	if !ok {
		return
	}
	delete(d.objects, id)
	if old.Token() {
		d.tokenObjects--
	}
	if k, ok := trustedPublic(old); ok {
		if d.trusted[k]--; d.trusted[k] <= 0 {
			delete(d.trusted, k)
		}
	}
}
