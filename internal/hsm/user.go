package hsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// User is an account on the HSM. A *User in the device's table is never
// changed: a change publishes a modified clone under d.mu, after the store
// has it. Every write of a user record happens under d.createMu, so changes
// to one user (failure counts above all) are never lost to a race.
type User struct {
	Name      string
	Role      Role
	Failures  int    // consecutive failed logins
	Locked    bool   // set at Config.MaxLoginFailures; cleared by an admin's password reset
	QuorumKey []byte // SPKI DER of the admin's quorum approval key, nil if none
	hash      []byte // encoded password hash (see password.go)
	// passwordSet is when the password was last set (Unix nanoseconds):
	// a record from a peer that carries an older password than this one
	// (a failed login counted there before the change arrived) must not
	// bring the old password back; see Device.mergeUser.
	passwordSet int64
}

func (u *User) clone() *User {
	c := *u
	c.QuorumKey = bytes.Clone(u.QuorumKey)
	c.hash = bytes.Clone(u.hash)
	return &c
}

// UserInfo is what ListUsers tells about a user.
type UserInfo struct {
	Name       string
	Role       Role
	Locked     bool
	Failures   int
	QuorumKey  bool // a quorum key is registered
	OwnedKeys  int  // token keys the user owns
	SharedKeys int  // token keys shared with the user
}

// userFormat is the first byte of a user record. Format 2, in order:
//
//	name (uvarint length, bytes) | role u8 | failures uvarint | locked u8 |
//	password hash (uvarint length, bytes) | quorum key (uvarint length, bytes; 0 = none) |
//	password set (uvarint, Unix nanoseconds)
//
// Varints are canonical and nothing may follow, so a record has one encoding.
const userFormat = 2

const (
	maxUsernameLen  = 31
	maxHashLen      = 256
	maxQuorumKeyLen = 4096
	maxFailures     = 1 << 20
)

var errUserRecord = errors.New("malformed user record")

func (u *User) marshal() ([]byte, error) {
	if !validUsername(u.Name) || !validRole(u.Role) || u.Failures < 0 || u.Failures > maxFailures ||
		len(u.hash) == 0 || len(u.hash) > maxHashLen || len(u.QuorumKey) > maxQuorumKeyLen {
		return nil, fmt.Errorf("user %q: cannot encode an invalid user", u.Name)
	}
	w := fieldWriter{b: []byte{userFormat}}
	w.bytes([]byte(u.Name))
	w.b = append(w.b, byte(u.Role))
	w.uvarint(uint64(u.Failures))
	w.bool(u.Locked)
	w.bytes(u.hash)
	w.bytes(u.QuorumKey)
	w.uvarint(uint64(u.passwordSet))
	return w.b, nil
}

func unmarshalUser(b []byte) (*User, error) {
	if len(b) == 0 || b[0] != userFormat {
		return nil, fmt.Errorf("%w: unknown format", errUserRecord)
	}
	r := fieldReader{b: b[1:]}
	u := &User{Name: string(r.bytes(maxUsernameLen))}
	u.Role = Role(r.byte())
	u.Failures = r.int(maxFailures)
	u.Locked = r.bool()
	u.hash = r.bytes(maxHashLen)
	u.QuorumKey = r.bytes(maxQuorumKeyLen)
	u.passwordSet = int64(r.uvarint() & (1<<63 - 1))
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("%w: %w", errUserRecord, err)
	}
	switch {
	case !validUsername(u.Name):
		return nil, fmt.Errorf("%w: bad name", errUserRecord)
	case !validRole(u.Role):
		return nil, fmt.Errorf("%w: bad role %d", errUserRecord, u.Role)
	case len(u.hash) == 0:
		return nil, fmt.Errorf("%w: no password hash", errUserRecord)
	}
	return u, nil
}

func validRole(r Role) bool { return r >= RoleAdmin && r <= rolePreAdmin }

func isAdmin(r Role) bool { return r == RoleAdmin || r == rolePreAdmin }

// validUsername: 1 to 31 characters of A-Z a-z 0-9 _ -.
func validUsername(s string) bool {
	if len(s) < 1 || len(s) > maxUsernameLen {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func (d *Device) user(name string) *User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.users[name]
}

// putUser persists u, then publishes it. The caller holds d.createMu.
func (d *Device) putUser(ctx context.Context, u *User) error {
	if err := d.storeUser(ctx, u); err != nil {
		return err
	}
	d.setUser(u)
	return nil
}

func (d *Device) storeUser(ctx context.Context, u *User) error {
	b, err := u.marshal()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDevice, err)
	}
	if err := d.cfg.Store.Put(ctx, RecordUser, u.Name, b); err != nil {
		return fmt.Errorf("%w: store user: %w", ErrDevice, err)
	}
	return nil
}

func (d *Device) setUser(u *User) {
	d.mu.Lock()
	d.users[u.Name] = u
	d.mu.Unlock()
}

// finish audits a management operation, durably, and returns its error as an
// *Error. An operation that succeeded but could not be audited reports a
// device error: it took effect, and the caller must know the log lacks it.
func (d *Device) finish(ctx context.Context, sid SessionID, p *principal, op, target string, err error) error {
	if err != nil {
		if e, ok := errors.AsType[*Error](err); !ok || e == nil {
			err = &Error{Op: op, Err: err}
		}
	}
	if aerr := d.auditSync(ctx, sid, p, op, 0, target, err); aerr != nil {
		if err == nil {
			return &Error{Op: op, Err: fmt.Errorf("%w: done, but its audit record failed: %w", ErrDevice, aerr)}
		}
		d.log.Error("audit record failed", "op", op, "err", aerr)
	}
	return err
}

// admin returns the session's principal if it is an admin of an activated
// cluster. The principal is returned, for the audit, whenever there is one.
func (d *Device) admin(sid SessionID) (*principal, error) {
	_, p, err := d.whoami(sid)
	switch {
	case err != nil:
		return nil, err
	case p == nil:
		return nil, ErrNotLoggedIn
	case p.role == rolePreAdmin:
		return p, ErrNotActivated
	case p.role != RoleAdmin:
		return p, fmt.Errorf("%w: %s cannot manage users or quorum", ErrRoleNotPermitted, p.role)
	case !d.Activated():
		return p, ErrNotActivated
	}
	return p, nil
}

// createPreAdmin creates the first admin of a new store, with the default
// password it must change to activate the cluster.
func (d *Device) createPreAdmin(ctx context.Context) error {
	h, err := hashPassword(d.cfg.Rand, d.cfg.Password, d.cfg.FIPS, DefaultPreAdminPIN)
	if err != nil {
		return fmt.Errorf("create pre-admin: %w", err)
	}
	d.createMu.Lock()
	defer d.createMu.Unlock()
	if err := d.putUser(ctx, &User{Name: DefaultAdminName, Role: rolePreAdmin, hash: h, passwordSet: d.cfg.Now().UnixNano()}); err != nil {
		return fmt.Errorf("create pre-admin: %w", err)
	}
	return nil
}

// CreateUser creates a user (admins only; quorum-guarded when the
// user-management quorum value is above 1).
func (d *Device) CreateUser(ctx context.Context, sid SessionID, name string, role Role, password string, ap Approvals) error {
	p, err := d.createUser(ctx, sid, name, role, password, ap)
	return d.finish(ctx, sid, p, "user.create", name, err)
}

func (d *Device) createUser(ctx context.Context, sid SessionID, name string, role Role, pw string, ap Approvals) (*principal, error) {
	p, err := d.admin(sid)
	if err != nil {
		return p, err
	}
	if !validUsername(name) {
		return p, fmt.Errorf("%w: a username has 1 to %d characters of A-Z a-z 0-9 _ -", ErrArgumentsBad, maxUsernameLen)
	}
	if role != RoleAdmin && role != RoleCryptoUser && role != RoleApplianceUser {
		return p, fmt.Errorf("%w: %s", ErrUserTypeInvalid, role)
	}
	if err := checkPassword(pw); err != nil {
		return p, err
	}
	if d.user(name) != nil {
		return p, ErrUserExists
	}
	h, err := hashPassword(d.cfg.Rand, d.cfg.Password, d.cfg.FIPS, pw)
	if err != nil {
		return p, fmt.Errorf("%w: %w", ErrDevice, err)
	}

	d.createMu.Lock()
	defer d.createMu.Unlock()
	if d.user(name) != nil {
		return p, ErrUserExists
	}
	if owned, _ := d.keyCounts(name); owned > 0 {
		// A user deleted with force left its keys unusable under its
		// name; a new user of that name must not get them.
		return p, fmt.Errorf("%w: %d keys of a deleted user still carry the name %q", ErrUserExists, owned, name)
	}
	spend, err := d.approve(ctx, QuorumUserManagement, p, ap)
	if err != nil {
		return p, err
	}
	if err := d.putUser(ctx, &User{Name: name, Role: role, hash: h, passwordSet: d.cfg.Now().UnixNano()}); err != nil {
		return p, err
	}
	spend()
	return p, nil
}

// DeleteUser deletes a user (admins only; quorum-guarded). It refuses to
// delete a crypto user that owns token keys, or an admin when fewer than the
// user-management quorum value + 2 admins would remain, unless force is set.
// Sessions logged in as the user are logged out.
func (d *Device) DeleteUser(ctx context.Context, sid SessionID, name string, force bool, ap Approvals) error {
	p, target, err := d.deleteUser(ctx, sid, name, force, ap)
	return d.finish(ctx, sid, p, "user.delete", target, err)
}

func (d *Device) deleteUser(ctx context.Context, sid SessionID, name string, force bool, ap Approvals) (*principal, string, error) {
	p, err := d.admin(sid)
	if err != nil {
		return p, name, err
	}
	if name == p.name {
		return p, name, ErrCannotDeleteSelf
	}

	d.createMu.Lock()
	defer d.createMu.Unlock()
	u := d.user(name)
	if u == nil {
		return p, name, ErrUserNotFound
	}
	var forced []string
	if owned, _ := d.keyCounts(name); owned > 0 {
		if !force {
			return p, name, fmt.Errorf("%w: %q owns %d token keys that would become unusable", ErrUserOwnsKeys, name, owned)
		}
		forced = append(forced, fmt.Sprintf("%d owned keys left unusable", owned))
	}
	if isAdmin(u.Role) {
		left, m := d.adminCount()-1, d.settings().QuorumUserMgmt
		if left < m+2 {
			if !force {
				return p, name, fmt.Errorf("%w: %d admins would remain; user-management quorum %d needs %d",
					ErrLastAdmins, left, m, m+2)
			}
			forced = append(forced, fmt.Sprintf("%d admins left", left))
		}
	}
	target := name
	if len(forced) > 0 {
		target = fmt.Sprintf("%s (forced: %s)", name, strings.Join(forced, ", "))
	}
	spend, err := d.approve(ctx, QuorumUserManagement, p, ap)
	if err != nil {
		return p, target, err
	}
	// Shares go first: a name must not inherit access if it is reused.
	if err := d.withdrawShares(ctx, name); err != nil {
		return p, target, err
	}
	if err := d.cfg.Store.Delete(ctx, RecordUser, name); err != nil {
		return p, target, fmt.Errorf("%w: store user: %w", ErrDevice, err)
	}
	d.mu.Lock()
	delete(d.users, name)
	d.mu.Unlock()
	spend()
	d.dropQuorumTokens(name)
	d.logoutEverywhere(name)
	return p, target, nil
}

// resetLogins brings the sessions logged in as u in line with its role as a
// peer changed it: a pre-admin whose cluster was activated elsewhere becomes
// an admin; any other change of role ends the login.
func (d *Device) resetLogins(u *User) {
	for _, s := range d.allSessions() {
		s.mu.Lock()
		if s.who != nil && s.who.name == u.Name && s.who.role != u.Role {
			if s.who.role == rolePreAdmin && u.Role == RoleAdmin {
				s.who = &principal{name: u.Name, role: RoleAdmin}
			} else {
				s.who = nil
				clear(s.ops)
			}
		}
		s.mu.Unlock()
	}
}

// logoutEverywhere ends the login of every session logged in as a user that
// no longer exists, and their operations.
func (d *Device) logoutEverywhere(name string) {
	for _, s := range d.allSessions() {
		s.mu.Lock()
		if s.who != nil && s.who.name == name {
			s.who = nil
			clear(s.ops)
		}
		s.mu.Unlock()
	}
}

// ChangePassword sets a user's password. Any user may change its own; an
// admin may change anyone's, which is quorum-guarded for another user and
// also clears its failure count and lock (the unlock path).
func (d *Device) ChangePassword(ctx context.Context, sid SessionID, name, newPassword string, ap Approvals) error {
	p, err := d.changePassword(ctx, sid, name, newPassword, ap)
	return d.finish(ctx, sid, p, "user.change-password", name, err)
}

func (d *Device) changePassword(ctx context.Context, sid SessionID, name, pw string, ap Approvals) (*principal, error) {
	_, p, err := d.whoami(sid)
	switch {
	case err != nil:
		return nil, err
	case p == nil:
		return nil, ErrNotLoggedIn
	}
	self := name == p.name
	switch {
	case self && p.role == rolePreAdmin:
		return p, fmt.Errorf("%w: the pre-admin sets its password by activating", ErrNotActivated)
	case !self:
		if p, err = d.admin(sid); err != nil {
			return p, err
		}
	}
	if err := checkPassword(pw); err != nil {
		return p, err
	}
	if d.user(name) == nil {
		return p, ErrUserNotFound
	}
	h, err := hashPassword(d.cfg.Rand, d.cfg.Password, d.cfg.FIPS, pw)
	if err != nil {
		return p, fmt.Errorf("%w: %w", ErrDevice, err)
	}

	d.createMu.Lock()
	defer d.createMu.Unlock()
	u := d.user(name)
	if u == nil {
		return p, ErrUserNotFound
	}
	spend := func() {}
	if !self {
		if spend, err = d.approve(ctx, QuorumUserManagement, p, ap); err != nil {
			return p, err
		}
	}
	n := u.clone()
	n.hash, n.passwordSet = h, d.cfg.Now().UnixNano()
	if !self {
		n.Failures, n.Locked = 0, false
	}
	if err := d.putUser(ctx, n); err != nil {
		return p, err
	}
	spend()
	return p, nil
}

// NoSession stands for "no session" where a method needs none.
const NoSession SessionID = 0

// ListUsers lists the users, sorted by name, to anyone, as on CloudHSM: a
// session that is not logged in, or NoSession, will do.
func (d *Device) ListUsers(sid SessionID) ([]UserInfo, error) {
	if sid != NoSession {
		if _, err := d.session(sid); err != nil {
			return nil, &Error{Op: "user.list", Err: err}
		}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	owned, shared := map[string]int{}, map[string]int{}
	for _, o := range d.objects {
		if !o.Token() || !isKeyClass(o.class) {
			continue
		}
		owned[o.owner]++
		for _, s := range o.shared {
			shared[s]++
		}
	}
	out := make([]UserInfo, 0, len(d.users))
	for _, u := range d.users {
		out = append(out, UserInfo{
			Name: u.Name, Role: u.Role, Locked: u.Locked, Failures: u.Failures,
			QuorumKey: u.QuorumKey != nil, OwnedKeys: owned[u.Name], SharedKeys: shared[u.Name],
		})
	}
	slices.SortFunc(out, func(a, b UserInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func isKeyClass(c ck.ObjectClass) bool {
	return c == ck.CKO_SECRET_KEY || c == ck.CKO_PRIVATE_KEY || c == ck.CKO_PUBLIC_KEY
}

// keyCounts returns how many token keys name owns and how many are shared
// with it.
func (d *Device) keyCounts(name string) (owned, shared int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, o := range d.objects {
		if !o.Token() || !isKeyClass(o.class) {
			continue
		}
		if o.owner == name {
			owned++
		}
		if o.sharedWith(name) {
			shared++
		}
	}
	return owned, shared
}

// withdrawShares removes name from the sharing list of every token key. The
// caller holds d.createMu, which serializes the writers of objects.
func (d *Device) withdrawShares(ctx context.Context, name string) error {
	d.mu.RLock()
	var objs []*Object
	for _, o := range d.objects {
		if o.sharedWith(name) {
			objs = append(objs, o)
		}
	}
	d.mu.RUnlock()
	for _, o := range objs {
		n := o.clone()
		n.shared = slices.DeleteFunc(n.shared, func(u string) bool { return u == name })
		if n.Token() {
			data, err := n.marshal()
			if err != nil {
				return fmt.Errorf("%w: %w", ErrDevice, err)
			}
			if err := d.cfg.Store.Put(ctx, RecordObject, n.id.String(), data); err != nil {
				return fmt.Errorf("%w: store object: %w", ErrDevice, err)
			}
		}
		d.mu.Lock()
		if _, ok := d.objects[n.id]; ok {
			d.objects[n.id] = n
		}
		d.mu.Unlock()
	}
	return nil
}

// adminCount counts the admins, the pre-admin included.
func (d *Device) adminCount() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := 0
	for _, u := range d.users {
		if isAdmin(u.Role) {
			n++
		}
	}
	return n
}

// Login logs the session in as name with role (the pre-admin logs in as
// RoleAdmin). An unknown user, a wrong password and a role that is not the
// user's all give ErrPinIncorrect, after the same hashing work. Each failure
// is counted and persisted; at Config.MaxLoginFailures the user is locked
// and every login gives ErrPinLocked until an admin resets its password.
func (d *Device) Login(ctx context.Context, sid SessionID, role Role, name, password string) error {
	p, err := d.login(ctx, sid, role, name, password)
	return d.finish(ctx, sid, p, "login", name, err)
}

func (d *Device) login(ctx context.Context, sid SessionID, role Role, name, pw string) (*principal, error) {
	s, cur, err := d.whoami(sid)
	switch {
	case err != nil:
		return nil, err
	case cur != nil:
		return cur, ErrAlreadyLoggedIn
	case role != RoleAdmin && role != RoleCryptoUser && role != RoleApplianceUser:
		return nil, fmt.Errorf("%w: cannot log in as %s", ErrUserTypeInvalid, role)
	}
	d.mu.RLock()
	u, activated := d.users[name], d.cluster.Activated
	d.mu.RUnlock()
	if !activated && (u == nil || u.Role != rolePreAdmin) {
		return nil, ErrNotActivated
	}
	if u == nil {
		burnPassword(d.cfg.Password, d.cfg.FIPS, pw)
		return nil, ErrPinIncorrect
	}
	if u.Locked {
		return nil, ErrPinLocked
	}
	ok, err := verifyPassword(u.hash, pw)
	if err != nil {
		return nil, fmt.Errorf("%w: user %q: %w", ErrDevice, name, err)
	}
	ok = ok && (role == u.Role || role == RoleAdmin && u.Role == rolePreAdmin)
	var rehash []byte
	if ok && needsRehash(u.hash, d.cfg.Password, d.cfg.FIPS) {
		// Best effort: the login stands even if the upgrade fails.
		rehash, _ = hashPassword(d.cfg.Rand, d.cfg.Password, d.cfg.FIPS, pw)
	}

	// The outcome is applied to the user as it is now, under createMu, so
	// concurrent failures all count and a deleted user is not logged in.
	d.createMu.Lock()
	defer d.createMu.Unlock()
	now := d.user(name)
	switch {
	case now == nil:
		return nil, ErrPinIncorrect
	case now.Locked:
		return nil, ErrPinLocked
	case !bytes.Equal(now.hash, u.hash):
		return nil, ErrPinIncorrect // the password changed while we checked the old one
	}
	if !ok {
		n := now.clone()
		n.Failures++
		n.Locked = n.Failures >= d.cfg.MaxLoginFailures
		// Counted in memory even if the store fails, and persisted even if
		// the caller gives up: hanging up must not avoid the count.
		d.setUser(n)
		if err := d.storeUser(context.WithoutCancel(ctx), n); err != nil {
			return nil, err
		}
		return nil, ErrPinIncorrect
	}
	if now.Failures > 0 || rehash != nil {
		n := now.clone()
		n.Failures = 0
		if rehash != nil {
			n.hash = rehash
		}
		if err := d.putUser(ctx, n); err != nil {
			return nil, err
		}
	}
	p := &principal{name: name, role: now.Role}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.who != nil {
		return s.who, ErrAlreadyLoggedIn
	}
	s.who = p
	return p, nil
}

// Logout ends the session's login and abandons its operations in progress.
func (d *Device) Logout(sid SessionID) error {
	s, p, err := d.whoami(sid)
	if err == nil && p == nil {
		err = ErrNotLoggedIn
	}
	if err == nil {
		s.mu.Lock()
		if s.who == p {
			s.who = nil
			clear(s.ops)
		}
		s.mu.Unlock()
	} else {
		err = &Error{Op: "logout", Err: err}
	}
	d.audit(sid, p, "logout", 0, "", err)
	return err
}

// mergeUser decides what a user record from a peer becomes here. Records
// are last-writer-wins, but a failed login writes the whole record with the
// password it was checked against: if that password is older than the one
// this HSM holds, the incoming record keeps this HSM's password (and its
// failure count, which belongs to that password) and the merged record is
// written back so it wins everywhere. It reports whether a write-back is
// needed. The caller holds createMu.
func (d *Device) mergeUser(in *User) (*User, bool) {
	local := d.user(in.Name)
	if local == nil || local.passwordSet <= in.passwordSet {
		return in, false
	}
	m := local.clone()
	m.Role, m.QuorumKey = in.Role, bytes.Clone(in.QuorumKey)
	return m, true
}
