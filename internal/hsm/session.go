package hsm

import (
	"context"
	"sync"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/ck"
)

// SessionID names a session on one device. Ids are never reused while the
// device runs.
type SessionID uint64

// Role is what a user is. Values are persisted.
type Role uint8

const (
	RoleAdmin          Role = 1 // crypto officer: manages users, cannot use keys
	RoleCryptoUser     Role = 2 // owns and uses keys
	RoleApplianceUser  Role = 3 // clones and synchronizes; cannot manage users or use keys
	rolePreAdmin       Role = 4 // the first admin, until it changes the default password
	DefaultAdminName        = "admin"
	DefaultPreAdminPIN      = "password"
)

func (r Role) String() string {
	switch r {
	case RoleAdmin:
		return "admin"
	case RoleCryptoUser:
		return "crypto-user"
	case RoleApplianceUser:
		return "appliance-user"
	case rolePreAdmin:
		return "pre-admin"
	}
	return "invalid-role"
}

// ParseRole reads the names the CLI and PKCS#11 module use.
func ParseRole(s string) (Role, error) {
	switch s {
	case "admin", "crypto-officer", "co":
		return RoleAdmin, nil
	case "crypto-user", "cu":
		return RoleCryptoUser, nil
	case "appliance-user", "au":
		return RoleApplianceUser, nil
	}
	return 0, &Error{Op: "parse role", Err: ErrUserTypeInvalid}
}

// principal is who a session is logged in as.
type principal struct {
	name string
	role Role
}

// session is one caller's context: its login, its session objects, its
// multi-part operations. mu guards every field but id.
type session struct {
	id      SessionID
	mu      sync.Mutex
	who     *principal
	ops     map[OpID]*operation
	nextOp  OpID
	objects map[ObjectID]struct{} // session objects to destroy on close
}

// OpenSession starts a session with no login.
func (d *Device) OpenSession() SessionID {
	id := SessionID(d.nextSession.Add(1))
	s := &session{id: id, ops: map[OpID]*operation{}, objects: map[ObjectID]struct{}{}}
	d.sessMu.Lock()
	d.sessions[id] = s
	d.sessMu.Unlock()
	return id
}

// CloseSession ends a session, its operations and its session objects.
func (d *Device) CloseSession(id SessionID) error {
	d.sessMu.Lock()
	s, ok := d.sessions[id]
	delete(d.sessions, id)
	d.sessMu.Unlock()
	if !ok {
		return &Error{Op: "close session", Err: ErrSessionHandleInvalid}
	}
	s.mu.Lock()
	objs := s.objects
	s.objects = nil
	d.dropOps(s)
	s.ops = nil
	s.mu.Unlock()
	d.mu.Lock()
	for oid := range objs {
		delete(d.objects, oid)
	}
	d.mu.Unlock()
	return nil
}

// SessionCount is the number of open sessions (metric HsmSessionCount).
func (d *Device) SessionCount() int {
	d.sessMu.RLock()
	defer d.sessMu.RUnlock()
	return len(d.sessions)
}

func (d *Device) session(id SessionID) (*session, error) {
	d.sessMu.RLock()
	s, ok := d.sessions[id]
	d.sessMu.RUnlock()
	if !ok {
		return nil, ErrSessionHandleInvalid
	}
	return s, nil
}

// whoami returns the session and its principal (nil when not logged in).
func (d *Device) whoami(id SessionID) (*session, *principal, error) {
	s, err := d.session(id)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	p := s.who
	s.mu.Unlock()
	return s, p, nil
}

// cryptoUser returns the session's principal if it may use keys.
func (d *Device) cryptoUser(op string, id SessionID) (*session, *principal, error) {
	s, p, err := d.whoami(id)
	switch {
	case err != nil:
		return nil, nil, &Error{Op: op, Err: err}
	case p == nil:
		return nil, nil, &Error{Op: op, Err: ErrNotLoggedIn}
	case p.role == RoleAdmin || p.role == rolePreAdmin:
		return nil, nil, &Error{Op: op, Err: ErrAdminCannotUseKeys}
	case p.role != RoleCryptoUser:
		return nil, nil, &Error{Op: op, Err: ErrRoleNotPermitted}
	}
	return s, p, nil
}

// audit records a key or user operation without waiting for the disk.
func (d *Device) audit(s SessionID, p *principal, op string, obj ObjectID, target string, err error) {
	if strangerRefused(p, err) {
		return
	}
	ev := audit.Event{Time: d.cfg.Now(), Session: uint64(s), Op: op, Object: uint64(obj), Target: target, Result: resultOf(err)}
	if p != nil {
		ev.User, ev.Role = p.name, p.role.String()
	}
	d.cfg.Audit.Append(ev)
}

// auditSync records a management operation and waits until it is durable.
func (d *Device) auditSync(ctx context.Context, s SessionID, p *principal, op string, obj ObjectID, target string, err error) error {
	if strangerRefused(p, err) {
		return nil
	}
	ev := audit.Event{Time: d.cfg.Now(), Session: uint64(s), Op: op, Object: uint64(obj), Target: target, Result: resultOf(err)}
	if p != nil {
		ev.User, ev.Role = p.name, p.role.String()
	}
	return d.cfg.Audit.AppendSync(ctx, ev)
}

// strangerRefused reports a call refused because its session is not logged
// in: it is not audited. It changed nothing and names no one, and whoever
// reaches the node's port can send such calls at any rate (each would be a
// record, a management call's a durable one: an fsync). Failed logins are
// audited: they name a user and the node paces them per client address.
func strangerRefused(p *principal, err error) bool {
	return p == nil && err != nil && Code(err) == ck.CKR_USER_NOT_LOGGED_IN
}

func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	return Code(err).String()
}
