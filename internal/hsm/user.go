package hsm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// User is an account on the HSM. A *User in the device's table is never
// changed: a change publishes a modified clone under d.mu, after the store
// has it. Every write of a user record happens under lockUserWrites or userMu, so changes
// to one user (failure counts above all) are never lost to a race.
//
// A user record is written by every HSM of the cluster and merged (see
// mergeUser), so its login state is made of parts that merge without loss:
//
//   - the password (hash, passwordSet, and the role that goes with it): the
//     newer wins;
//   - the lock, which belongs to resetAt (the last admin reset or recovery
//     unlock): a newer resetAt wins, and for the same resetAt a lock on
//     either side stays;
//   - the failure counts, one per device that counted (failSlot), which
//     belong to failEpoch (when they were last cleared): a newer epoch wins,
//     and for the same epoch each device's count is the larger of the two.
//     The cluster's count is their sum.
type User struct {
	Name      string
	Role      Role
	Locked    bool   // set at Config.MaxLoginFailures; cleared by an admin's password reset
	QuorumKey []byte // SPKI DER of the admin's quorum approval key, nil if none
	hash      []byte // encoded password hash (see password.go)
	// passwordSet is when the password was last set (Unix nanoseconds):
	// a record from a peer that carries an older password than this one
	// (a failed login counted there before the change arrived) must not
	// bring the old password back; see Device.mergeUser.
	passwordSet int64
	// resetAt is when an admin last reset the password, or a recovery
	// unlocked the user (Unix nanoseconds): the lock belongs to it.
	resetAt int64
	// failEpoch is when the failure counts were last cleared (a successful
	// login, a reset); failures are the counts since, sorted by slot.
	failEpoch int64
	failures  []failCount
}

// failCount is how many failed logins one device counted in an epoch.
type failCount struct {
	slot uint64 // the counting device's failSlot
	n    int
}

func (u *User) clone() *User {
	c := *u
	c.QuorumKey = bytes.Clone(u.QuorumKey)
	c.hash = bytes.Clone(u.hash)
	c.failures = slices.Clone(u.failures)
	return &c
}

// Failures is the cluster's count of failed logins since the last success or
// reset: the sum over the devices that counted.
func (u *User) Failures() int {
	n := 0
	for _, f := range u.failures {
		n += f.n
	}
	return n
}

// countFailure adds one failure counted by the device of slot.
func (u *User) countFailure(slot uint64) {
	i, found := slices.BinarySearchFunc(u.failures, slot, func(f failCount, s uint64) int { return cmp.Compare(f.slot, s) })
	if found {
		u.failures[i].n++
		return
	}
	u.failures = slices.Insert(u.failures, i, failCount{slot: slot, n: 1})
}

// clearFailures starts a new failure epoch, later than the current one.
func (u *User) clearFailures(now int64) {
	u.failEpoch, u.failures = later(now, u.failEpoch), nil
}

// reset is an admin's reset (or the recovery unlock): it unlocks the user
// and clears its failures, in a new lock epoch that wins over every lock
// counted before it, here or on a peer.
func (u *User) reset(now int64) {
	u.resetAt, u.Locked = later(now, u.resetAt), false
	u.clearFailures(now)
}

// later is now, or just after prev if the clock is behind it: a new epoch
// always orders after the one it replaces.
func later(now, prev int64) int64 { return max(now, prev+1) }

// UserInfo is what ListUsers tells about a user. Only Name and Role are
// given to a caller that is not a logged-in admin; the other fields are zero.
type UserInfo struct {
	Name       string
	Role       Role
	Locked     bool
	Failures   int
	QuorumKey  bool // a quorum key is registered
	OwnedKeys  int  // token keys the user owns
	SharedKeys int  // token keys shared with the user
}

// userFormat is the first byte of a user record. Format 3, in order:
//
//	name (uvarint length, bytes) | role u8 | locked u8 |
//	password hash (uvarint length, bytes) | quorum key (uvarint length, bytes; 0 = none) |
//	password set | reset at | failure epoch (uvarints, Unix nanoseconds) |
//	failure counts (uvarint count, then per count: slot uvarint, n uvarint;
//	slots ascending, n > 0)
//
// Format 2 (still read; written by earlier versions) had one failure count:
//
//	name | role u8 | failures uvarint | locked u8 | password hash | quorum key | password set
//
// Varints are canonical and nothing may follow, so a record has one encoding.
const (
	userFormat       = 3
	userFormatSingle = 2
)

const (
	maxUsernameLen  = 31
	maxHashLen      = 256
	maxQuorumKeyLen = 4096
	maxFailures     = 1 << 20
	// maxFailSlots bounds the devices counting in one epoch. A device
	// counts nothing once the user is locked, at most 1000 failures, so
	// only a cluster of thousands of HSMs could reach it.
	maxFailSlots = 4096
)

var errUserRecord = errors.New("malformed user record")

func (u *User) marshal() ([]byte, error) {
	if !validUsername(u.Name) || !validRole(u.Role) || len(u.failures) > maxFailSlots ||
		len(u.hash) == 0 || len(u.hash) > maxHashLen || len(u.QuorumKey) > maxQuorumKeyLen ||
		u.passwordSet < 0 || u.resetAt < 0 || u.failEpoch < 0 {
		return nil, fmt.Errorf("user %q: cannot encode an invalid user", u.Name)
	}
	for i, f := range u.failures {
		if f.n < 1 || f.n > maxFailures || i > 0 && u.failures[i-1].slot >= f.slot {
			return nil, fmt.Errorf("user %q: cannot encode invalid failure counts", u.Name)
		}
	}
	w := fieldWriter{b: []byte{userFormat}}
	w.bytes([]byte(u.Name))
	w.b = append(w.b, byte(u.Role))
	w.bool(u.Locked)
	w.bytes(u.hash)
	w.bytes(u.QuorumKey)
	w.uvarint(uint64(u.passwordSet))
	w.uvarint(uint64(u.resetAt))
	w.uvarint(uint64(u.failEpoch))
	w.uvarint(uint64(len(u.failures)))
	for _, f := range u.failures {
		w.uvarint(f.slot)
		w.uvarint(uint64(f.n))
	}
	return w.b, nil
}

func unmarshalUser(b []byte) (*User, error) {
	if len(b) == 0 || b[0] != userFormat && b[0] != userFormatSingle {
		return nil, fmt.Errorf("%w: unknown format", errUserRecord)
	}
	r := fieldReader{b: b[1:]}
	u := &User{Name: string(r.bytes(maxUsernameLen))}
	u.Role = Role(r.byte())
	if b[0] == userFormatSingle {
		n := r.int(maxFailures)
		u.Locked = r.bool()
		u.hash = r.bytes(maxHashLen)
		u.QuorumKey = r.bytes(maxQuorumKeyLen)
		u.passwordSet = int64(r.uvarint() & (1<<63 - 1))
		// The single count becomes the count of slot 0, in the epoch
		// of the password it was counted against.
		u.resetAt, u.failEpoch = u.passwordSet, u.passwordSet
		if n > 0 {
			u.failures = []failCount{{slot: 0, n: n}}
		}
	} else {
		u.Locked = r.bool()
		u.hash = r.bytes(maxHashLen)
		u.QuorumKey = r.bytes(maxQuorumKeyLen)
		u.passwordSet, u.resetAt, u.failEpoch = readTime(&r), readTime(&r), readTime(&r)
		count := r.int(maxFailSlots)
		for i := 0; i < count && r.err == nil; i++ {
			f := failCount{slot: r.uvarint(), n: r.int(maxFailures)}
			if f.n == 0 || i > 0 && u.failures[i-1].slot >= f.slot {
				r.fail("bad failure counts")
			}
			u.failures = append(u.failures, f)
		}
	}
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

// readTime reads a time of a user record: Unix nanoseconds, 0..MaxInt64.
func readTime(r *fieldReader) int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail("time out of range")
		return 0
	}
	return int64(v)
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

// putUser persists u, then publishes it. The caller holds d.writes.lockAll.
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
	h, err := d.newPasswordHash(ctx, DefaultPreAdminPIN)
	if err != nil {
		return fmt.Errorf("create pre-admin: %w", err)
	}
	defer d.lockUserWrites()()
	if err := d.putUser(ctx, d.newUser(DefaultAdminName, rolePreAdmin, h)); err != nil {
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
	h, err := d.newPasswordHash(ctx, pw)
	if err != nil {
		return p, err
	}

	defer d.lockUserWrites()()
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
	// Nor the keys shared with that user: a share that reached this HSM
	// after the deletion (from a peer that had not learnt of it yet) is
	// withdrawn before the name is given again.
	if err := d.withdrawShares(ctx, name); err != nil {
		return p, err
	}
	if err := d.putUser(ctx, d.newUser(name, role, h)); err != nil {
		return p, err
	}
	spend()
	return p, nil
}

// newUser is a new user record: its password, lock and failure epochs start
// now.
func (d *Device) newUser(name string, role Role, hash []byte) *User {
	now := d.cfg.Now().UnixNano()
	return &User{Name: name, Role: role, hash: hash, passwordSet: now, resetAt: now, failEpoch: now}
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

	defer d.lockUserWrites()()
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
				d.dropOps(s)
			}
		}
		s.mu.Unlock()
	}
}

// logoutEverywhere ends the login of every session logged in as name, and
// their operations: the user no longer exists, was reset or was locked.
func (d *Device) logoutEverywhere(name string) {
	for _, s := range d.allSessions() {
		s.mu.Lock()
		if s.who != nil && s.who.name == name {
			s.who = nil
			d.dropOps(s)
		}
		s.mu.Unlock()
	}
}

// ChangePassword sets a user's password. Any user may change its own; an
// admin may change anyone's, which is quorum-guarded for another user, also
// clears its failure count and lock (the unlock path) and logs out every
// session logged in as that user.
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
	h, err := d.newPasswordHash(ctx, pw)
	if err != nil {
		return p, err
	}

	defer d.lockUserWrites()()
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
	now := d.cfg.Now().UnixNano()
	n := u.clone()
	n.hash, n.passwordSet = h, later(now, u.passwordSet)
	if !self {
		n.reset(now)
	}
	if err := d.putUser(ctx, n); err != nil {
		return p, err
	}
	spend()
	if !self {
		// A reset ends the user's logins: whoever held them must log in
		// with the new password.
		d.logoutEverywhere(name)
	}
	return p, nil
}

// NoSession stands for "no session" where a method needs none.
const NoSession SessionID = 0

// ListUsers lists the users, sorted by name, to anyone, as on CloudHSM: a
// session that is not logged in, or NoSession, will do. Only a session
// logged in as an admin learns more than names and roles (lock state,
// failure counts, quorum keys, key counts): to anyone else they would say
// whom to lock out, and whose keys are worth attacking.
func (d *Device) ListUsers(sid SessionID) ([]UserInfo, error) {
	detail := false
	if sid != NoSession {
		_, p, err := d.whoami(sid)
		if err != nil {
			return nil, &Error{Op: "user.list", Err: err}
		}
		detail = p != nil && p.role == RoleAdmin
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
		info := UserInfo{Name: u.Name, Role: u.Role}
		if detail {
			info.Locked, info.Failures = u.Locked, u.Failures()
			info.QuorumKey, info.OwnedKeys, info.SharedKeys = u.QuorumKey != nil, owned[u.Name], shared[u.Name]
		}
		out = append(out, info)
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
// caller holds d.writes.lockAll, which excludes every other writer of objects.
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
		if err := d.burnLogin(ctx, pw); err != nil {
			return nil, err
		}
		return nil, ErrPinIncorrect
	}
	if u.Locked {
		return nil, ErrPinLocked
	}
	ok, err := d.passwordMatches(ctx, u.hash, pw)
	switch {
	case errors.Is(err, errPasswordHash):
		return nil, fmt.Errorf("%w: user %q: %w", ErrDevice, name, err)
	case err != nil:
		return nil, err // gave up waiting: nothing was checked, nothing counts
	}
	ok = ok && (role == u.Role || role == RoleAdmin && u.Role == rolePreAdmin)
	var rehash []byte
	if ok && needsRehash(u.hash, d.cfg.Password, d.cfg.FIPS) {
		// Best effort: the login stands even if the upgrade fails.
		rehash, _ = d.newPasswordHash(ctx, pw)
	}

	// The outcome is applied to the user as it is now, under userMu (which
	// every writer of user records holds), so concurrent failures all count
	// and a deleted user is not logged in. Not under d.writes: a failed
	// login's store write does not hold up changes of objects and settings,
	// nor a peer's update of them.
	d.userMu.Lock()
	defer d.userMu.Unlock()
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
		n.countFailure(d.failSlot)
		n.Locked = n.Failures() >= d.cfg.MaxLoginFailures
		// Counted in memory even if the store fails, and persisted even if
		// the caller gives up: hanging up must not avoid the count.
		d.setUser(n)
		if n.Locked {
			d.logoutEverywhere(name)
		}
		if err := d.storeUser(context.WithoutCancel(ctx), n); err != nil {
			return nil, err
		}
		return nil, ErrPinIncorrect
	}
	if now.Failures() > 0 || rehash != nil {
		n := now.clone()
		if now.Failures() > 0 {
			n.clearFailures(d.cfg.Now().UnixNano())
		}
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
			d.dropOps(s)
		}
		s.mu.Unlock()
	} else {
		err = &Error{Op: "logout", Err: err}
	}
	d.audit(sid, p, "logout", 0, "", err)
	return err
}

// mergeUser decides what a user record from a peer becomes here: the merge
// of the record this HSM holds and the incoming one, part by part (see
// User). The merge loses nothing either side counted, so the failures of the
// whole cluster add up against Config.MaxLoginFailures, and a lock never
// comes undone by a merge: only a newer reset clears it. It reports whether
// the merge differs from the incoming record, which must then be written
// back so that it wins everywhere. Merging the merge again changes nothing,
// so two HSMs stop writing back once they agree. The caller holds d.writes.lockAll
// and userMu (lockUserWrites).
func (d *Device) mergeUser(in *User) (*User, bool) {
	local := d.user(in.Name)
	if local == nil {
		return in, false
	}
	m := in.clone()
	if cmpPassword(local, in) > 0 {
		m.Role, m.hash, m.passwordSet = local.Role, bytes.Clone(local.hash), local.passwordSet
	}
	switch {
	case local.resetAt > in.resetAt:
		m.resetAt, m.Locked = local.resetAt, local.Locked
	case local.resetAt == in.resetAt:
		m.Locked = local.Locked || in.Locked
	}
	switch {
	case local.failEpoch > in.failEpoch:
		m.failEpoch, m.failures = local.failEpoch, slices.Clone(local.failures)
	case local.failEpoch == in.failEpoch:
		m.failures = maxCounts(local.failures, in.failures)
	}
	if m.Failures() >= d.cfg.MaxLoginFailures {
		m.Locked = true
	}
	a, aerr := m.marshal()
	b, berr := in.marshal()
	return m, aerr != nil || berr != nil || !bytes.Equal(a, b)
}

// cmpPassword orders the passwords of two records of one user: by the time
// each was set, then by hash, so that two HSMs always pick the same one.
func cmpPassword(a, b *User) int {
	switch {
	case a.passwordSet != b.passwordSet:
		return cmp.Compare(a.passwordSet, b.passwordSet)
	}
	return bytes.Compare(a.hash, b.hash)
}

// maxCounts merges two slot-sorted failure counts of one epoch: each slot
// gets the larger count.
func maxCounts(a, b []failCount) []failCount {
	out := make([]failCount, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].slot < b[j].slot:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].slot < a[i].slot:
			out = append(out, b[j])
			j++
		default:
			out = append(out, failCount{slot: a[i].slot, n: max(a[i].n, b[j].n)})
			i++
			j++
		}
	}
	return out
}

// RecoverAdmin unlocks admin name without a login: the recovery when every
// admin is locked and none can reset another. It is for `coffer hsm
// unlock-admin` only, run on a stopped node's host over its data dir (whoever
// can do that holds the node key, and with it everything the node stores);
// no network API reaches it. The password is kept; the failure counts are
// cleared. The unlock is a reset in a new reset epoch, later than any this
// HSM knows, so when the node is back it wins the merge over the locked
// record its peers hold. It is audited.
func (d *Device) RecoverAdmin(ctx context.Context, name string) error {
	err := d.recoverAdmin(ctx, name)
	return d.finish(ctx, NoSession, nil, "user.recover-admin", name, err)
}

func (d *Device) recoverAdmin(ctx context.Context, name string) error {
	defer d.lockUserWrites()()
	u := d.user(name)
	switch {
	case u == nil:
		return ErrUserNotFound
	case !isAdmin(u.Role):
		return fmt.Errorf("%w: %s is a %s: an admin unlocks it with a password reset", ErrRoleNotPermitted, name, u.Role)
	}
	n := u.clone()
	n.reset(d.cfg.Now().UnixNano())
	return d.putUser(ctx, n)
}
