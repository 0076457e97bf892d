package hsm

import (
	"bytes"
	"context"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// CopyObject copies an object as C_CopyObject does (PKCS#11 v3.0 §5.7): the
// copy is a new object with the original's attributes and key material,
// changed as the template says. Only the crypto user who owns the object
// copies it (a user it is shared with uses it, as on CloudHSM, and a copy
// would make that user the owner of the owner's key); a CKA_COPYABLE false
// object is not copied, nor a trusted one (an admin's decision about that
// one object, see mayTrust). The copy belongs to the caller, is shared with
// no one, and is a token object (stored durably, replicated like any new
// object) or a session object of the calling session, as its CKA_TOKEN
// says. What the template may change is copyOne's rule.
func (d *Device) CopyObject(ctx context.Context, sid SessionID, id ObjectID, tmpl Template) (ObjectID, error) {
	const op = "object.copy"
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, err
	}
	n, err := d.copyOf(s, p, id, tmpl)
	if err == nil {
		err = d.publish(ctx, s, p, n)
	}
	if err != nil {
		err = &Error{Op: op, Err: err}
		d.audit(sid, p, op, 0, id.String(), err)
		return 0, err
	}
	d.audit(sid, p, op, n.id, id.String(), nil)
	return n.id, nil
}

// copyOf makes the unpublished copy of object id for p.
func (d *Device) copyOf(s *session, p *principal, id ObjectID, tmpl Template) (*Object, error) {
	o, err := d.lookup(s, p, id)
	if err != nil {
		return nil, err
	}
	switch {
	case o.owner != p.name:
		return nil, fmt.Errorf("%w: a key shared with you is used, not copied", ErrNotOwner)
	case !o.has(fCopyable):
		return nil, fmt.Errorf("%w: CKA_COPYABLE is false", ErrActionProhibited)
	case o.has(fTrusted):
		return nil, fmt.Errorf("%w: the object is trusted; only an admin makes an object trusted", ErrActionProhibited)
	}
	n := o.clone()
	// A new object: its own id, owner, session and creation mark (publish,
	// allocObjectID), no sharing. Key material (immutable), the computed
	// attributes (CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE,
	// CKA_KEY_GEN_MECHANISM: the same as the original's, as §5.7 says) and
	// the binding of a key made from another user's key stay.
	n.id, n.owner, n.shared, n.session, n.made = 0, "", nil, 0, nil
	modifiable := o.has(fModifiable)
	for _, a := range tmpl {
		if err := copyOne(n, p, modifiable, a); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// copyOne applies one attribute of a C_CopyObject template to the copy n.
// Any attribute may be given its current value. Otherwise: CKA_TOKEN,
// CKA_PRIVATE and CKA_DESTROYABLE may take either value (they are the
// copy's own, §4.4: changeable in a copy); CKA_MODIFIABLE and CKA_COPYABLE
// only go from true to false; the rest only as C_SetAttributeValue may
// change them (setOne: CKA_SENSITIVE false to true, CKA_EXTRACTABLE and
// wrap-with-trusted one way, CKA_TRUSTED only by an admin, key material and
// what it fixes never), and nothing of those if the original is not
// modifiable (else CKA_MODIFIABLE false would freeze nothing: a copy could
// undo it). CKA_CHECK_VALUE describes the key material the copy shares and
// is kept.
func copyOne(n *Object, p *principal, modifiable bool, a Attribute) error {
	switch {
	case !validFor(n.class, a.Type):
		return fmt.Errorf("%w: %v", ErrAttributeTypeInvalid, a.Type)
	case !checkValue(a.Type, a.Value):
		return fmt.Errorf("%w: %v", ErrAttributeValueInvalid, a.Type)
	}
	if cur, ok := n.attrs[a.Type]; ok && bytes.Equal(cur, a.Value) {
		return nil
	}
	switch a.Type {
	case ck.CKA_TOKEN, ck.CKA_PRIVATE, ck.CKA_DESTROYABLE:
		n.setAttr(a.Type, bytes.Clone(a.Value))
		return nil
	case ck.CKA_MODIFIABLE, ck.CKA_COPYABLE:
		if decodeBool(a.Value) {
			return fmt.Errorf("%w: %v can only change from true to false", ErrAttributeReadOnly, a.Type)
		}
		n.setAttr(a.Type, bytes.Clone(a.Value))
		return nil
	case ck.CKA_CHECK_VALUE:
		if n.isKey() {
			return fmt.Errorf("%w: CKA_CHECK_VALUE belongs to the key material", ErrAttributeReadOnly)
		}
	}
	if !modifiable {
		return fmt.Errorf("%w: %v: the original's CKA_MODIFIABLE is false", ErrAttributeReadOnly, a.Type)
	}
	return setOne(n, p, a)
}
