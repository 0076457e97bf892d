package client

import (
	"context"
	"sync"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Quorum tokens live in the memory of the HSM that issued them, so a request
// carrying approvals goes to that HSM: the one this Session got the token
// from, or the one that lists it.

// maxTokens bounds the issuing HSMs a Session remembers.
const maxTokens = 256

// empty invokes a request answered with Empty.
func (s *Session) empty(ctx context.Context, cl call, fn requestFunc) error {
	_, err := s.c.invoke(ctx, s, cl, fn)
	return err
}

// Activate sets the pre-admin's new password, which activates the cluster;
// the Session logs in with it from then on.
func (s *Session) Activate(ctx context.Context, newPassword string) error {
	err := s.empty(ctx, call{op: "activate"}, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.Activate(ctx, &hsmv1.ActivateRequest{Session: sid, NewPassword: newPassword})
		return err
	})
	if err == nil {
		s.setPassword(newPassword)
	}
	return err
}

// CreateUser creates a user; approvals are needed when the user-management
// quorum value is above 1.
func (s *Session) CreateUser(ctx context.Context, username, role, password string, approvals *Approvals) error {
	cl, err := s.approved(ctx, "create user", approvals)
	if err != nil {
		return err
	}
	return s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: sid, Username: username, Role: role,
			Password: password, Approvals: wireApprovals(approvals)})
		return err
	})
}

// DeleteUser deletes a user; force deletes one that owns keys.
func (s *Session) DeleteUser(ctx context.Context, username string, force bool, approvals *Approvals) error {
	cl, err := s.approved(ctx, "delete user", approvals)
	if err != nil {
		return err
	}
	return s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.DeleteUser(ctx, &hsmv1.DeleteUserRequest{Session: sid, Username: username, Force: force,
			Approvals: wireApprovals(approvals)})
		return err
	})
}

// ChangePassword sets a user's password (the Session's own, or another's as
// an admin). Changing the Session's own password also changes the one it
// logs in with on HSMs that come back.
func (s *Session) ChangePassword(ctx context.Context, username, newPassword string, approvals *Approvals) error {
	cl, err := s.approved(ctx, "change password", approvals)
	if err != nil {
		return err
	}
	err = s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.ChangePassword(ctx, &hsmv1.ChangePasswordRequest{Session: sid, Username: username,
			NewPassword: newPassword, Approvals: wireApprovals(approvals)})
		return err
	})
	if err == nil && (username == "" || username == s.username) {
		s.setPassword(newPassword)
	}
	return err
}

// ListUsers lists the users of the cluster.
func (s *Session) ListUsers(ctx context.Context) ([]UserInfo, error) {
	var r *hsmv1.ListUsersResponse
	err := s.empty(ctx, call{op: "list users", retry: true}, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.ListUsers(ctx, &hsmv1.SessionRequest{Session: sid})
		return err
	})
	if err != nil {
		return nil, err
	}
	return usersFrom(r), nil
}

func usersFrom(r *hsmv1.ListUsersResponse) []UserInfo {
	out := make([]UserInfo, len(r.GetUsers()))
	for i, u := range r.GetUsers() {
		out[i] = UserInfo{Username: u.GetUsername(), Role: u.GetRole(), Locked: u.GetLocked(), Failures: int(u.GetFailures()),
			QuorumKey: u.GetQuorumKey(), OwnedKeys: int(u.GetOwnedKeys()), SharedKeys: int(u.GetSharedKeys())}
	}
	return out
}

// RegisterQuorumKey registers the logged-in admin's quorum public key
// (SubjectPublicKeyInfo DER).
func (s *Session) RegisterQuorumKey(ctx context.Context, spki []byte) error {
	return s.empty(ctx, call{op: "register quorum key"}, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.RegisterQuorumKey(ctx, &hsmv1.RegisterQuorumKeyRequest{Session: sid, Spki: spki})
		return err
	})
}

// QuorumToken gets a token for service ("user-management",
// "quorum-management") for approvers to sign. The Session remembers which HSM
// issued it.
func (s *Session) QuorumToken(ctx context.Context, service string) (QuorumToken, error) {
	var r *hsmv1.QuorumTokenInfo
	m, err := s.c.invoke(ctx, s, call{op: "quorum token"}, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.QuorumToken(ctx, &hsmv1.QuorumTokenRequest{Session: sid, Service: service})
		return err
	})
	if err != nil {
		return QuorumToken{}, err
	}
	s.tokens.put(r.GetId(), m)
	return fromQuorumToken(r), nil
}

// ListQuorumTokens lists the outstanding quorum tokens of every HSM that is
// up (each HSM holds the tokens it issued).
func (s *Session) ListQuorumTokens(ctx context.Context) ([]QuorumToken, error) {
	lists, err := s.tokenLists(ctx)
	if err != nil {
		return nil, err
	}
	var out []QuorumToken
	for _, l := range lists {
		for _, t := range l {
			out = append(out, fromQuorumToken(t))
		}
	}
	return out, nil
}

// tokenLists asks every HSM that is up for its tokens, by member index; it
// fails only if none answered.
func (s *Session) tokenLists(ctx context.Context) ([][]*hsmv1.QuorumTokenInfo, error) {
	members := s.c.live()
	lists := make([][]*hsmv1.QuorumTokenInfo, s.c.nslots())
	errs := make([]error, len(lists))
	var wg sync.WaitGroup
	for _, m := range members {
		if !m.up.Load() {
			continue
		}
		wg.Go(func() {
			errs[m.idx] = s.empty(ctx, call{op: "list quorum tokens", only: m, onlyWhat: "its quorum tokens"}, func(ctx context.Context, m *member, sid uint64) error {
				r, err := m.rpc.ListQuorumTokens(ctx, &hsmv1.SessionRequest{Session: sid})
				lists[m.idx] = r.GetTokens()
				return err
			})
			for _, t := range lists[m.idx] {
				s.tokens.put(t.GetId(), m)
			}
		})
	}
	wg.Wait()
	var first error
	for _, m := range members {
		if errs[m.idx] == nil && m.up.Load() {
			return lists, nil
		}
		if first == nil {
			first = errs[m.idx]
		}
	}
	if first == nil {
		first = ErrNoHSM
	}
	return nil, first
}

// DeleteQuorumToken deletes a quorum token on the HSM that issued it.
func (s *Session) DeleteQuorumToken(ctx context.Context, id string) error {
	cl, err := s.approved(ctx, "delete quorum token", &Approvals{Token: id})
	if err != nil {
		return err
	}
	return s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.DeleteQuorumToken(ctx, &hsmv1.DeleteQuorumTokenRequest{Session: sid, Id: id})
		return err
	})
}

// SetQuorumValue sets M for a quorum service.
func (s *Session) SetQuorumValue(ctx context.Context, service string, value int, force bool, approvals *Approvals) error {
	cl, err := s.approved(ctx, "set quorum value", approvals)
	if err != nil {
		return err
	}
	return s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.SetQuorumValue(ctx, &hsmv1.SetQuorumValueRequest{Session: sid, Service: service,
			Value: uint32(value), Force: force, Approvals: wireApprovals(approvals)})
		return err
	})
}

// QuorumValues returns M for each quorum service.
func (s *Session) QuorumValues(ctx context.Context) (map[string]int, error) {
	var r *hsmv1.QuorumValuesResponse
	err := s.empty(ctx, call{op: "quorum values", retry: true}, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.QuorumValues(ctx, &hsmv1.SessionRequest{Session: sid})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(r.GetValues()))
	for k, v := range r.GetValues() {
		out[k] = int(v)
	}
	return out, nil
}

// approved returns the call for a request that may carry approvals: pinned to
// the HSM holding the token when there is one. A token this Session has not
// seen is looked up on every HSM; if none lists it the request goes anywhere
// (and the HSM will refuse it).
func (s *Session) approved(ctx context.Context, op string, a *Approvals) (call, error) {
	cl := call{op: op}
	if a == nil || a.Token == "" {
		return cl, nil
	}
	m := s.tokens.get(a.Token)
	if m == nil {
		if _, err := s.tokenLists(ctx); err != nil {
			return cl, err
		}
		m = s.tokens.get(a.Token)
	}
	if m != nil {
		cl.only, cl.onlyWhat = m, "quorum token "+a.Token
	}
	return cl, nil
}

// tokenHSMs maps quorum token ids to the HSM that issued them, bounded.
type tokenHSMs struct {
	mu    sync.Mutex
	by    map[string]*member
	order []string
}

func (t *tokenHSMs) put(id string, m *member) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by == nil {
		t.by = map[string]*member{}
	}
	if _, ok := t.by[id]; !ok {
		t.order = append(t.order, id)
	}
	t.by[id] = m
	for len(t.order) > maxTokens {
		delete(t.by, t.order[0])
		t.order = t.order[1:]
	}
}

func (t *tokenHSMs) get(id string) *member {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.by[id]
}
