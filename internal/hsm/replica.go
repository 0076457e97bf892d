package hsm

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// This file: the device's rules for replicating one record between clone
// clusters (clusters that share a masking key; CloudHSM's key replicate and
// user replicate). The record travels sealed and unchanged; the device
// decides who may send it, and whether the destination may take it. A
// replica is a record no local rule made, so every rule a local change
// obeys is checked again here against what the destination holds: a key
// replicated over a key of the destination is a change of that key.

// ReplicateObject checks that the session may send the token object id to
// a clone cluster: only a crypto user who owns the key (CloudHSM: "Crypto
// Users must own the key"), and only a token object. The node exports the
// record afterwards; the check is audited.
func (d *Device) ReplicateObject(sid SessionID, id ObjectID) error {
	const op = "object.replicate-out"
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return err
	}
	err = func() error {
		o, err := d.lookup(s, p, id)
		switch {
		case err != nil:
			return err
		case o.owner != p.name:
			return fmt.Errorf("%w: %s does not own the key; only its owner replicates it", ErrNotOwner, p.name)
		case !o.Token():
			return fmt.Errorf("%w: a session object is not replicated", ErrReplicaRefused)
		}
		return nil
	}()
	d.audit(sid, p, op, id, "", err)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	return nil
}

// AdmitObject takes an object record replicated from a clone cluster: id is
// the record's id, data its payload in clear (the node opened it under the masking
// key); apply stores the sealed record (last writer wins) and reports
// whether it was newer than what the store holds. The record is refused
// unless the session's crypto user owns it, its owner and every user it is
// shared with are crypto users here, and, if this cluster holds the object
// already, it is the same key of the same owner and the replica changes
// nothing a local change could not (the one-way attributes, CKA_TRUSTED).
// The check and the store write run under createMu, as local changes do;
// the node reloads the record into the device afterwards (Reload).
func (d *Device) AdmitObject(ctx context.Context, sid SessionID, id string, data []byte, apply func(context.Context) (bool, error)) (ObjectID, bool, error) {
	const op = "object.replicate-in"
	_, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, false, err
	}
	in, err := unmarshalObject(data)
	if err == nil && in.id.String() != id {
		err = fmt.Errorf("the record of object %s holds object %s", id, in.id)
	}
	if err != nil {
		err = &Error{Op: op, Err: fmt.Errorf("%w: %w", ErrReplicaRefused, err)}
		d.audit(sid, p, op, 0, "", err)
		return 0, false, err
	}
	applied, err := func() (bool, error) {
		d.createMu.Lock()
		defer d.createMu.Unlock()
		if err := d.admitObject(p, in); err != nil {
			return false, err
		}
		applied, err := apply(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: store: %w", ErrDevice, err)
		}
		return applied, nil
	}()
	if aerr := d.auditSync(ctx, sid, p, op, in.id, in.owner, err); aerr != nil && err == nil {
		err = fmt.Errorf("%w: replicated, but its audit record failed: %w", ErrDevice, aerr)
	}
	if err != nil {
		return 0, false, &Error{Op: op, Err: err}
	}
	return in.id, applied, nil
}

// admitObject is AdmitObject's rule. The caller holds createMu.
func (d *Device) admitObject(p *principal, in *Object) error {
	if in.session != 0 || !in.Token() {
		return fmt.Errorf("%w: a session object is not replicated", ErrReplicaRefused)
	}
	for _, u := range append([]string{in.owner}, in.shared...) {
		if usr := d.user(u); usr == nil || usr.Role != RoleCryptoUser {
			return fmt.Errorf("%w: crypto user %s, who owns the key or shares it, does not exist on the destination cluster: replicate the user first (user replicate)",
				ErrReplicaRefused, u)
		}
	}
	if in.owner != p.name {
		return fmt.Errorf("%w: the key belongs to %s; only its owner replicates it", ErrNotOwner, in.owner)
	}
	d.mu.RLock()
	cur := d.objects[in.id]
	full := len(d.objects)+len(d.reserved) >= d.cfg.MaxObjects
	_, busy := d.reserved[in.id]
	d.mu.RUnlock()
	switch {
	case cur == nil && busy:
		return fmt.Errorf("%w: an object of id %s is being made here", ErrReplicaRefused, in.id)
	case cur == nil && full:
		return ErrDeviceMemory // the cap on objects holds for replicas as for new keys (publish)
	}
	if cur == nil {
		// Only an admin of this cluster marks a key trusted (mayTrust).
		if in.has(fTrusted) {
			return fmt.Errorf("%w: the key is trusted (CKA_TRUSTED) on the source cluster; only an admin of the destination marks a key trusted", ErrReplicaRefused)
		}
		return nil
	}
	return replaces(cur, in)
}

// replaces checks that in may replace cur, the same object of this
// cluster: the same key of the same owner, the same session-independent
// identity, and a change the owner could have made here with
// C_SetAttributeValue (setOne): the one-way attributes only their way, the
// read-only ones not at all, nothing on a key that is not modifiable, and
// CKA_TRUSTED not at all (it is the admins', mayTrust).
func replaces(cur, in *Object) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: the destination's copy of key %s: "+format, append([]any{ErrReplicaRefused, cur.id}, args...)...)
	}
	switch {
	case cur.session != 0:
		return refuse("it is a session object")
	case cur.owner != in.owner:
		return fmt.Errorf("%w: key %s belongs to %s on the destination cluster", ErrNotOwner, cur.id, cur.owner)
	case cur.class != in.class || cur.keyType != in.keyType || cur.bound != in.bound || !sameKey(cur.key, in.key):
		return refuse("it is another key")
	case cur.has(fTrusted) != in.has(fTrusted):
		return refuse("CKA_TRUSTED differs; only an admin of the destination sets or clears it")
	case cur.has(fSensitive) && !in.has(fSensitive):
		return refuse("CKA_SENSITIVE is true there; it can only change from false to true")
	case !cur.has(fExtractable) && in.has(fExtractable):
		return refuse("CKA_EXTRACTABLE is false there; it can only change from true to false")
	case cur.has(fWrapWithTrusted) && !in.has(fWrapWithTrusted):
		return refuse("CKA_WRAP_WITH_TRUSTED is true there; it can only change from false to true")
	}
	types := map[ck.AttributeType]bool{}
	for t := range cur.attrs {
		types[t] = true
	}
	for t := range in.attrs {
		types[t] = true
	}
	for t := range types {
		a, ina := cur.attrs[t]
		b, inb := in.attrs[t]
		if ina == inb && bytes.Equal(a, b) {
			continue
		}
		if !cur.has(fModifiable) {
			return refuse("CKA_MODIFIABLE is false there, and the replica changes %v", t)
		}
		if readOnlyAfterCreate[t] && !(cur.class == ck.CKO_DATA && t == ck.CKA_VALUE) {
			return refuse("the replica changes %v, which cannot change after creation", t)
		}
	}
	return nil
}

// sameKey reports whether two objects hold the same key material (both none
// for data and certificates).
func sameKey(a, b *keyMaterial) bool {
	switch {
	case a == nil || b == nil:
		return a == nil && b == nil
	case a.secret != nil || b.secret != nil:
		return subtle.ConstantTimeCompare(a.secret, b.secret) == 1
	case a.pub != nil && b.pub != nil:
		ka, oka := publicKeyID(a.pub)
		kb, okb := publicKeyID(b.pub)
		return oka && okb && ka == kb
	}
	return false
}

// ReplicateUser checks that the session may send user name to a clone
// cluster: admins only (CloudHSM's user replicate), and not the pre-admin.
func (d *Device) ReplicateUser(ctx context.Context, sid SessionID, name string) error {
	const op = "user.replicate-out"
	p, err := d.admin(sid)
	if err == nil {
		switch u := d.user(name); {
		case u == nil:
			err = fmt.Errorf("%w: %s", ErrUserNotFound, name)
		case u.Role == rolePreAdmin:
			err = fmt.Errorf("%w: the pre-admin is not replicated", ErrReplicaRefused)
		}
	}
	return d.finish(ctx, sid, p, op, name, err)
}

// AdmitUser takes a user record replicated from a clone cluster, as
// AdmitObject takes an object's. The session's user is an admin; the
// change is what creating the user (or, for a user this cluster has,
// resetting its password) is here, so it needs the user-management quorum
// as those do (ap); a user of this cluster is replaced only by a record of
// the same role; a new user does not take the name of a deleted user's
// keys (createUser's rule).
func (d *Device) AdmitUser(ctx context.Context, sid SessionID, name string, data []byte, ap Approvals, apply func(context.Context) (bool, error)) (bool, error) {
	const op = "user.replicate-in"
	p, err := d.admin(sid)
	var applied bool
	if err == nil {
		applied, err = d.admitUser(ctx, p, name, data, ap, apply)
	}
	return applied, d.finish(ctx, sid, p, op, name, err)
}

func (d *Device) admitUser(ctx context.Context, p *principal, name string, data []byte, ap Approvals, apply func(context.Context) (bool, error)) (bool, error) {
	in, err := unmarshalUser(data)
	switch {
	case err != nil:
		return false, fmt.Errorf("%w: %w", ErrReplicaRefused, err)
	case in.Name != name:
		return false, fmt.Errorf("%w: the record names %q, not %q", ErrReplicaRefused, in.Name, name)
	case in.Role != RoleAdmin && in.Role != RoleCryptoUser && in.Role != RoleApplianceUser:
		return false, fmt.Errorf("%w: a %s is not replicated", ErrReplicaRefused, in.Role)
	}
	d.createMu.Lock()
	defer d.createMu.Unlock()
	if cur := d.user(name); cur != nil {
		if cur.Role != in.Role {
			return false, fmt.Errorf("%w: %s has role %s on the destination cluster and %s on the source", ErrReplicaRefused, name, cur.Role, in.Role)
		}
	} else if owned, _ := d.keyCounts(name); owned > 0 {
		return false, fmt.Errorf("%w: %d keys of a deleted user still carry the name %q", ErrUserExists, owned, name)
	}
	spend, err := d.approve(ctx, QuorumUserManagement, p, ap)
	if err != nil {
		return false, err
	}
	applied, err := apply(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: store: %w", ErrDevice, err)
	}
	spend()
	return applied, nil
}

// AuditRefusedReplica records a replica the node refused before the
// device saw it (its envelope: another destination, another masking key,
// a MAC that does not verify, expired), with the session's user, the
// source cluster the envelope names and the refusal's PKCS#11 code.
func (d *Device) AuditRefusedReplica(sid SessionID, kind RecordKind, source string, rv ck.RV) {
	op := "object.replicate-in"
	if kind == RecordUser {
		op = "user.replicate-in"
	}
	_, p, err := d.whoami(sid)
	if err != nil || p == nil {
		return // not logged in: refused before the envelope was read
	}
	d.audit(sid, p, op, 0, source, &Kind{RV: rv, msg: "replica refused"})
}
