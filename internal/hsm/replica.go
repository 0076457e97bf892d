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
// whether it was newer than what the store holds. The record must meet
// admitClone's rule, with the session's crypto user as the one who brings
// it (it must own the key). The check and the store write run under
// d.writes.lockAll, as local changes of more than one record do; the node reloads the record into the
// device afterwards (Reload).
func (d *Device) AdmitObject(ctx context.Context, sid SessionID, id string, data []byte, apply func(context.Context) (bool, error)) (ObjectID, bool, error) {
	const op = "object.replicate-in"
	_, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return 0, false, err
	}
	var got admitted
	applied, err := func() (bool, error) {
		defer d.writes.lockAll()()
		var err error
		if got, err = d.admitClone(ctx, cloneRoute{by: p}, RecordObject, id, data); err != nil {
			return false, err
		}
		applied, err := apply(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: store: %w", ErrDevice, err)
		}
		return applied, nil
	}()
	if aerr := d.auditSync(ctx, sid, p, op, got.object, got.owner, err); aerr != nil && err == nil {
		err = fmt.Errorf("%w: replicated, but its audit record failed: %w", ErrDevice, aerr)
	}
	if err != nil {
		return 0, false, &Error{Op: op, Err: err}
	}
	return got.object, applied, nil
}

// cloneRoute is how a record from a clone cluster reaches this one: a
// one-shot replicate (key replicate, user replicate: a session of this
// cluster imports it) or a replication link (a node of the linked source
// pushes it). admitClone's rule is the same for both; the fields are where
// the two routes differ, and nothing else is.
type cloneRoute struct {
	// by is the session's user of a one-shot replicate: the crypto user
	// who must own the key it imports, or the admin who imports a user and
	// whose approvals (ap) must meet the user-management quorum. It is nil
	// over a link: nobody of this cluster is logged in; the destination's
	// admins accepted the source when they created the inbound link (under
	// the quorum-management quorum), and that stands for both.
	by *principal
	ap Approvals
	// deletions: a deletion (tombstone) may cross. A link keeps the clone
	// level with its source, deletions included; an envelope never holds
	// one (the node refuses it before the device sees it).
	deletions bool
	// users: user records may cross, new admins included (the destination
	// chose so: user replicate by one of its admins, or a link created
	// with --users on both sides). Without it a user record is refused.
	users bool
}

// admitted is what admitClone found out about the record it let in.
type admitted struct {
	object ObjectID
	owner  string
	spend  func() // spends the quorum token; call once the record is stored
}

// admitClone is the one rule a record from a clone cluster meets before it
// is stored here, whichever route brought it. A replica is a record no
// local rule made, so every rule a local change obeys is checked again
// against what this cluster holds:
//
//   - objects: a token object whose record id names the object inside;
//     its owner and every user it is shared with are crypto users here;
//     the cap on objects holds; a new key is not trusted (only an admin of
//     this cluster marks a key trusted); over a key this cluster has, it
//     is the same key of the same owner and changes nothing a local
//     change could not (replaces); a deletion deletes only what the owner
//     could destroy here (mayDestroy: not a trusted key, not one with
//     CKA_DESTROYABLE false);
//   - users: a record stored under its own name, of a role that is
//     replicated (not the pre-admin); an existing user keeps its role; a
//     new user does not take the name a deleted user's keys carry; a
//     deletion meets a local deletion's rules (no keys owned here, enough
//     admins left) and withdraws the user's shares as one does;
//   - nothing else (settings) is admitted.
//
// The caller holds d.writes.lockAll, and stores the record before releasing it.
func (d *Device) admitClone(ctx context.Context, r cloneRoute, kind RecordKind, id string, data []byte) (admitted, error) {
	got := admitted{spend: func() {}}
	switch kind {
	case RecordObject:
		oid, err := ParseObjectID(id)
		if err != nil || oid.String() != id {
			return got, fmt.Errorf("%w: record id %q is not an object id", ErrReplicaRefused, id)
		}
		if data == nil {
			got.object = oid
			return got, d.admitObjectDeletion(r, oid)
		}
		in, err := unmarshalObject(data)
		if err == nil && in.id.String() != id {
			err = fmt.Errorf("the record of object %s holds object %s", id, in.id)
		}
		if err != nil {
			return got, fmt.Errorf("%w: %w", ErrReplicaRefused, err)
		}
		got.object, got.owner = in.id, in.owner
		return got, d.admitObject(r, in)
	case RecordUser:
		if !r.users {
			return got, fmt.Errorf("%w: users are not replicated to this cluster by this route", ErrReplicaRefused)
		}
		if data == nil {
			return got, d.admitUserDeletion(ctx, r, id)
		}
		spend, err := d.admitUser(ctx, r, id, data)
		if err != nil {
			return got, err
		}
		got.spend = spend
		return got, nil
	}
	return got, fmt.Errorf("%w: records of kind %d are never replicated between clusters", ErrReplicaRefused, kind)
}

// admitObject is admitClone's rule for an object record.
func (d *Device) admitObject(r cloneRoute, in *Object) error {
	if in.session != 0 || !in.Token() {
		return fmt.Errorf("%w: a session object is not replicated", ErrReplicaRefused)
	}
	for _, u := range append([]string{in.owner}, in.shared...) {
		if usr := d.user(u); usr == nil || usr.Role != RoleCryptoUser {
			return fmt.Errorf("%w: crypto user %s, who owns the key or shares it, does not exist on the destination cluster: replicate the user first (user replicate)",
				ErrReplicaRefused, u)
		}
	}
	if r.by != nil && in.owner != r.by.name {
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

// admitObjectDeletion is admitClone's rule for the deletion of object id: a
// deletion the key's owner could make here (C_DestroyObject's rule).
func (d *Device) admitObjectDeletion(r cloneRoute, id ObjectID) error {
	if !r.deletions {
		return fmt.Errorf("%w: a deletion is not replicated by this route", ErrReplicaRefused)
	}
	d.mu.RLock()
	cur := d.objects[id]
	_, busy := d.reserved[id]
	d.mu.RUnlock()
	switch {
	case cur == nil && busy:
		return fmt.Errorf("%w: an object of id %s is being made here", ErrReplicaRefused, id)
	case cur == nil:
		return nil // nothing here to delete
	case cur.session != 0:
		return fmt.Errorf("%w: the destination's object %s is a session object", ErrReplicaRefused, id)
	}
	if err := mayDestroy(cur); err != nil {
		return fmt.Errorf("%w: the destination's copy of key %s may not be destroyed: %w", ErrReplicaRefused, id, err)
	}
	return nil
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
// AdmitObject takes an object's. The session's user is an admin, who brings
// it under admitClone's rule; the change is what creating the user (or,
// for a user this cluster has, resetting its password) is here, so it
// needs the user-management quorum as those do (ap).
func (d *Device) AdmitUser(ctx context.Context, sid SessionID, name string, data []byte, ap Approvals, apply func(context.Context) (bool, error)) (bool, error) {
	const op = "user.replicate-in"
	p, err := d.admin(sid)
	var applied bool
	if err == nil {
		applied, err = func() (bool, error) {
			defer d.lockUserWrites()()
			got, err := d.admitClone(ctx, cloneRoute{by: p, ap: ap, users: true}, RecordUser, name, data)
			if err != nil {
				return false, err
			}
			applied, err := apply(ctx)
			if err != nil {
				return false, fmt.Errorf("%w: store: %w", ErrDevice, err)
			}
			got.spend()
			return applied, nil
		}()
	}
	return applied, d.finish(ctx, sid, p, op, name, err)
}

// admitUser is admitClone's rule for a user record: a user of this cluster
// is replaced only by a record of the same role; a new user does not take
// the name of a deleted user's keys (createUser's rule). A one-shot
// replicate needs the user-management quorum (r.by, r.ap).
func (d *Device) admitUser(ctx context.Context, r cloneRoute, name string, data []byte) (func(), error) {
	in, err := unmarshalUser(data)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrReplicaRefused, err)
	case in.Name != name:
		return nil, fmt.Errorf("%w: the record names %q, not %q", ErrReplicaRefused, in.Name, name)
	case in.Role != RoleAdmin && in.Role != RoleCryptoUser && in.Role != RoleApplianceUser:
		return nil, fmt.Errorf("%w: a %s is not replicated", ErrReplicaRefused, in.Role)
	}
	if cur := d.user(name); cur != nil {
		if cur.Role != in.Role {
			return nil, fmt.Errorf("%w: %s has role %s on the destination cluster and %s on the source", ErrReplicaRefused, name, cur.Role, in.Role)
		}
	} else if owned, _ := d.keyCounts(name); owned > 0 {
		return nil, fmt.Errorf("%w: %d keys of a deleted user still carry the name %q", ErrUserExists, owned, name)
	}
	if r.by == nil {
		return func() {}, nil
	}
	return d.approve(ctx, QuorumUserManagement, r.by, r.ap)
}

// admitUserDeletion is admitClone's rule for the deletion of user name: what
// deleteUser requires without force (the user owns no keys here; enough
// admins remain for the user-management quorum), and, as it does, the
// user's shares are withdrawn first, so a name reused later inherits no
// access.
func (d *Device) admitUserDeletion(ctx context.Context, r cloneRoute, name string) error {
	if !r.deletions {
		return fmt.Errorf("%w: a deletion is not replicated by this route", ErrReplicaRefused)
	}
	u := d.user(name)
	if u == nil {
		return nil
	}
	if owned, _ := d.keyCounts(name); owned > 0 {
		return fmt.Errorf("%w: %w: %q owns %d token keys on the destination cluster", ErrReplicaRefused, ErrUserOwnsKeys, name, owned)
	}
	if isAdmin(u.Role) {
		if left, m := d.adminCount()-1, d.settings().QuorumUserMgmt; left < m+2 {
			return fmt.Errorf("%w: %w: %d admins would remain on the destination cluster; user-management quorum %d needs %d",
				ErrReplicaRefused, ErrLastAdmins, left, m, m+2)
		}
	}
	return d.withdrawShares(ctx, name)
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
