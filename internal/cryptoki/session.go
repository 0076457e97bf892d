package cryptoki

import (
	"bytes"
	"context"
	"sync"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// session is one PKCS#11 session.
type session struct {
	h    SessionHandle
	slot *slot
	rw   bool

	// mu guards the fields below. PKCS#11 lets an application use a
	// session from one thread at a time; mu makes a racing application get
	// consistent (if unhelpful) answers instead of corrupting state.
	mu      sync.Mutex
	ops     [numOps]op
	find    *findState
	objects []ObjectHandle // session objects this session created
	wrap    pendingWrap    // a wrapped key computed for a length query
}

// SessionInfo is CK_SESSION_INFO.
type SessionInfo struct {
	Slot  SlotID
	State ck.State
	Flags ck.Flags
}

// OpenSession answers C_OpenSession (flags are CKF_SERIAL_SESSION, and
// CKF_RW_SESSION for a read/write session).
func (m *Module) OpenSession(id SlotID, flags ck.Flags) (SessionHandle, ck.RV) {
	s, rv := m.slot(id)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	if flags&ck.CKF_SERIAL_SESSION == 0 {
		return 0, ck.CKR_SESSION_PARALLEL_NOT_SUPPORTED
	}
	rw := flags&ck.CKF_RW_SESSION != 0
	if _, ut, _ := s.login(); ut == ck.CKU_SO && !rw {
		return 0, ck.CKR_SESSION_READ_WRITE_SO_EXISTS
	}
	ss := &session{h: SessionHandle(m.cfg.Handles.next()), slot: s, rw: rw}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ck.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	m.sessions[ss.h] = ss
	return ss.h, ck.CKR_OK
}

func (m *Module) session(h SessionHandle) (*session, ck.RV) {
	m.mu.RLock()
	ss, ok := m.sessions[h]
	m.mu.RUnlock()
	if !ok {
		return nil, ck.CKR_SESSION_HANDLE_INVALID
	}
	return ss, ck.CKR_OK
}

// CloseSession answers C_CloseSession: it ends the session's operations,
// destroys the session objects it created and, if it was the slot's last
// session, logs the slot out.
func (m *Module) CloseSession(ctx context.Context, h SessionHandle) ck.RV {
	m.mu.Lock()
	ss, ok := m.sessions[h]
	if !ok {
		m.mu.Unlock()
		return ck.CKR_SESSION_HANDLE_INVALID
	}
	delete(m.sessions, h)
	last := true
	for _, o := range m.sessions {
		if o.slot == ss.slot {
			last = false
			break
		}
	}
	m.mu.Unlock()
	m.endSession(ctx, ss)
	if last {
		ss.slot.loginMu.Lock()
		defer ss.slot.loginMu.Unlock()
		if err := ss.slot.logout(ctx); err != nil {
			ss.slot.log.Warn("logout after the last session closed", "err", err)
		}
		m.forgetSessionObjects(ss.slot)
	}
	return ck.CKR_OK
}

// endSession aborts ss's operations and destroys its session objects.
func (m *Module) endSession(ctx context.Context, ss *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for i := range ss.ops {
		ss.ops[i].end(ctx)
	}
	ss.find = nil
	cs, _, _ := ss.slot.login()
	for _, oh := range ss.objects {
		ref, ok := m.forget(oh)
		if ok && cs != nil {
			if err := cs.DestroyObject(ctx, ref.id); err != nil {
				ss.slot.log.Debug("destroy session object", "object", ref.id, "err", err)
			}
		}
	}
	ss.objects = nil
}

// CloseAllSessions answers C_CloseAllSessions.
func (m *Module) CloseAllSessions(ctx context.Context, id SlotID) ck.RV {
	s, rv := m.slot(id)
	if rv != ck.CKR_OK {
		return rv
	}
	m.mu.RLock()
	var hs []SessionHandle
	for h, ss := range m.sessions {
		if ss.slot == s {
			hs = append(hs, h)
		}
	}
	m.mu.RUnlock()
	for _, h := range hs {
		m.CloseSession(ctx, h)
	}
	return ck.CKR_OK
}

// SessionInfo answers C_GetSessionInfo.
func (m *Module) SessionInfo(h SessionHandle) (SessionInfo, ck.RV) {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return SessionInfo{}, rv
	}
	_, ut, _ := ss.slot.login()
	info := SessionInfo{Slot: ss.slot.id, Flags: ck.CKF_SERIAL_SESSION}
	if ss.rw {
		info.Flags |= ck.CKF_RW_SESSION
	}
	switch {
	case ut == ck.CKU_SO:
		info.State = ck.CKS_RW_SO_FUNCTIONS
	case ut == ck.CKU_USER && ss.rw:
		info.State = ck.CKS_RW_USER_FUNCTIONS
	case ut == ck.CKU_USER:
		info.State = ck.CKS_RO_USER_FUNCTIONS
	case ss.rw:
		info.State = ck.CKS_RW_PUBLIC_SESSION
	default:
		info.State = ck.CKS_RO_PUBLIC_SESSION
	}
	return info, ck.CKR_OK
}

// roles maps PKCS#11 user types to Coffer roles.
var roles = map[ck.UserType]string{ck.CKU_USER: "crypto-user", ck.CKU_SO: "admin"}

// splitPIN splits "username:password".
func splitPIN(pin []byte) (user, password string, ok bool) {
	i := bytes.IndexByte(pin, ':')
	if i <= 0 || i == len(pin)-1 {
		return "", "", false
	}
	return string(pin[:i]), string(pin[i+1:]), true
}

// Login answers C_Login. The PIN is "username:password".
func (m *Module) Login(ctx context.Context, h SessionHandle, ut ck.UserType, pin []byte) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	s := ss.slot
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	_, cur, _ := s.login()
	switch {
	case ut == ck.CKU_CONTEXT_SPECIFIC && cur == loggedOut:
		return ck.CKR_USER_NOT_LOGGED_IN
	case ut == ck.CKU_CONTEXT_SPECIFIC:
		return ck.CKR_OPERATION_NOT_INITIALIZED // no key needs CKA_ALWAYS_AUTHENTICATE
	case roles[ut] == "":
		return ck.CKR_USER_TYPE_INVALID
	case cur == ut:
		return ck.CKR_USER_ALREADY_LOGGED_IN
	case cur != loggedOut:
		return ck.CKR_USER_ANOTHER_ALREADY_LOGGED_IN
	}
	if ut == ck.CKU_SO && m.hasReadOnlySession(s) {
		return ck.CKR_SESSION_READ_ONLY_EXISTS
	}
	user, password, ok := splitPIN(pin)
	if !ok {
		// A PIN without the colon is refused as a wrong PIN (as CloudHSM
		// does), but said plainly in the log; the PIN itself is never logged.
		s.log.Warn("C_Login refused: the PIN must have the form username:password (the Coffer user's name, a colon, then the password)", "user_type", roles[ut])
		return ck.CKR_PIN_INCORRECT
	}
	cl, err := s.cluster(ctx)
	if err != nil {
		s.log.Error("cluster not reachable", "err", err)
		return ck.CKR_DEVICE_ERROR
	}
	cs, err := cl.Login(ctx, roles[ut], user, password)
	if err != nil {
		s.log.Info("login failed", "user", user, "role", roles[ut], "err", err)
		return loginCode(err)
	}
	s.mu.Lock()
	s.sess, s.user = cs, ut
	s.epoch++
	s.mu.Unlock()
	s.log.Info("logged in", "user", user, "role", roles[ut])
	return ck.CKR_OK
}

// loginCode maps a failed login to C_Login's return values.
func loginCode(err error) ck.RV {
	switch rv := client.Code(err); rv {
	case ck.CKR_PIN_INCORRECT, ck.CKR_PIN_LOCKED, ck.CKR_PIN_EXPIRED, ck.CKR_USER_TYPE_INVALID,
		ck.CKR_DEVICE_ERROR, ck.CKR_FUNCTION_CANCELED, ck.CKR_USER_PIN_NOT_INITIALIZED:
		return rv
	case ck.CKR_USER_NOT_LOGGED_IN, ck.CKR_ARGUMENTS_BAD:
		return ck.CKR_PIN_INCORRECT
	default:
		return rv
	}
}

func (m *Module) hasReadOnlySession(s *slot) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, ss := range m.sessions {
		if ss.slot == s && !ss.rw {
			return true
		}
	}
	return false
}

// Logout answers C_Logout.
func (m *Module) Logout(ctx context.Context, h SessionHandle) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	s := ss.slot
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if _, ut, _ := s.login(); ut == loggedOut {
		return ck.CKR_USER_NOT_LOGGED_IN
	}
	// The operations and session objects of every session of the slot
	// lived in the client session.
	m.mu.RLock()
	var all []*session
	for _, o := range m.sessions {
		if o.slot == s {
			all = append(all, o)
		}
	}
	m.mu.RUnlock()
	for _, o := range all {
		o.mu.Lock()
		for i := range o.ops {
			o.ops[i].end(ctx)
		}
		o.find, o.objects = nil, nil
		o.mu.Unlock()
	}
	err := s.logout(ctx)
	m.forgetSessionObjects(s)
	if err != nil {
		s.log.Warn("logout", "err", err)
	}
	return ck.CKR_OK
}

// logout closes the slot's client session, if any. loginMu is held.
func (s *slot) logout(ctx context.Context) error {
	s.mu.Lock()
	cs := s.sess
	s.sess, s.user = nil, loggedOut
	s.epoch++
	s.mu.Unlock()
	if cs == nil {
		return nil
	}
	return cs.Close(ctx)
}

// SetPIN answers C_SetPIN: the logged-in user changes their password. Both
// PINs may be given as "username:password" or as the password alone.
func (m *Module) SetPIN(ctx context.Context, h SessionHandle, oldPIN, newPIN []byte) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	if !ss.rw {
		return ck.CKR_SESSION_READ_ONLY
	}
	cs, _, _ := ss.slot.login()
	if cs == nil {
		return ck.CKR_USER_NOT_LOGGED_IN
	}
	pw := func(pin []byte) (string, bool) {
		if u, p, ok := splitPIN(pin); ok {
			return p, u == cs.Username()
		}
		return string(pin), len(pin) > 0
	}
	op, ok := pw(oldPIN)
	if !ok {
		return ck.CKR_PIN_INCORRECT
	}
	_, ut, _ := ss.slot.login()
	cl, err := ss.slot.cluster(ctx)
	if err != nil {
		return ck.CKR_DEVICE_ERROR
	}
	check, err := cl.Login(ctx, roles[ut], cs.Username(), op) // proves the old PIN (a wrong one counts as a failed login)
	if err != nil {
		return loginCode(err)
	}
	_ = check.Close(ctx)
	np, ok := pw(newPIN)
	if !ok {
		return ck.CKR_PIN_INVALID
	}
	// The device checks who may change what; it does not take the old
	// password, which the login already proved.
	if err := cs.ChangePassword(ctx, cs.Username(), np, nil); err != nil {
		ss.slot.log.Info("change password", "err", err)
		return client.Code(err)
	}
	return ck.CKR_OK
}

// client returns the slot's client session for ss, or
// CKR_USER_NOT_LOGGED_IN.
func (ss *session) client() (Session, ck.RV) {
	cs, _, _ := ss.slot.login()
	if cs == nil {
		return nil, ck.CKR_USER_NOT_LOGGED_IN
	}
	return cs, ck.CKR_OK
}
