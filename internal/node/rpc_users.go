package node

import (
	"context"
	"slices"

	"github.com/coffer-hsm/coffer/internal/batch"
	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// hsmServer serves the HSM service: each RPC is one device call in the
// caller's session. This file: sessions, login, users and quorum.
type hsmServer struct {
	hsmv1.UnimplementedHSMServer
	n     *Node
	batch *batch.Server // nil: no Batch stream (tests of handlers alone)
}

// inSession runs f with the device and the request's session, marked busy
// for the call, and maps f's error through the table.
func inSession[T any](s *hsmServer, handle uint64, f func(dev *hsm.Device, cs *clientSession) (T, error)) (T, error) {
	var zero T
	dev := s.n.dev.Load()
	if dev == nil {
		return zero, errNotReady()
	}
	cs, err := s.n.sessions.acquire(handle)
	if err != nil {
		return zero, err
	}
	defer s.n.sessions.release(cs)
	out, err := f(dev, cs)
	if err != nil {
		return zero, deviceStatus(err)
	}
	return out, nil
}

func (s *hsmServer) OpenSession(ctx context.Context, _ *hsmv1.OpenSessionRequest) (*hsmv1.OpenSessionResponse, error) {
	dev := s.n.dev.Load()
	if dev == nil {
		return nil, errNotReady()
	}
	c, ok := connOf(ctx)
	if !ok {
		return nil, refusal(ck.CKR_DEVICE_ERROR, "call without a connection")
	}
	h, err := s.n.sessions.open(dev, c)
	if err != nil {
		return nil, err
	}
	return &hsmv1.OpenSessionResponse{Session: h}, nil
}

func (s *hsmServer) CloseSession(_ context.Context, req *hsmv1.SessionRequest) (*hsmv1.Empty, error) {
	dev := s.n.dev.Load()
	if dev == nil {
		return nil, errNotReady()
	}
	cs, ok := s.n.sessions.remove(req.GetSession())
	if !ok {
		return nil, refusal(ck.CKR_SESSION_HANDLE_INVALID, "no such session")
	}
	return &hsmv1.Empty{}, deviceStatus(dev.CloseSession(cs.dev))
}

func (s *hsmServer) Login(ctx context.Context, req *hsmv1.LoginRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := firstErr(name("username", req.GetUsername()), name("password", req.GetPassword())); err != nil {
			return nil, err
		}
		role, err := hsm.ParseRole(req.GetRole())
		if err != nil {
			return nil, err
		}
		// Paced per client address before any password is hashed, and
		// before any catch-up (catchup.go): a user made or changed on a
		// peer logs in here as there.
		err = s.n.logins.login(ctx, cs.addr, func() error {
			s.n.catchUp(ctx, "Login")
			return dev.Login(ctx, cs.dev, role, req.GetUsername(), req.GetPassword())
		})
		if err == nil {
			s.n.sessions.setLoggedIn(cs, true)
		}
		return &hsmv1.Empty{}, err
	})
}

func (s *hsmServer) Logout(_ context.Context, req *hsmv1.SessionRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		err := dev.Logout(cs.dev)
		if err == nil {
			s.n.sessions.setLoggedIn(cs, false)
		}
		return &hsmv1.Empty{}, err
	})
}

func (s *hsmServer) Activate(ctx context.Context, req *hsmv1.ActivateRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := name("password", req.GetNewPassword()); err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.Activate(ctx, cs.dev, req.GetNewPassword())
	})
}

func (s *hsmServer) CreateUser(ctx context.Context, req *hsmv1.CreateUserRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := firstErr(name("username", req.GetUsername()), name("password", req.GetPassword())); err != nil {
			return nil, err
		}
		role, err := hsm.ParseRole(req.GetRole())
		if err != nil {
			return nil, err
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.CreateUser(ctx, cs.dev, req.GetUsername(), role, req.GetPassword(), ap)
	})
}

func (s *hsmServer) DeleteUser(ctx context.Context, req *hsmv1.DeleteUserRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := name("username", req.GetUsername()); err != nil {
			return nil, err
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.DeleteUser(ctx, cs.dev, req.GetUsername(), req.GetForce(), ap)
	})
}

func (s *hsmServer) ChangePassword(ctx context.Context, req *hsmv1.ChangePasswordRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := firstErr(name("username", req.GetUsername()), name("password", req.GetNewPassword())); err != nil {
			return nil, err
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.ChangePassword(ctx, cs.dev, req.GetUsername(), req.GetNewPassword(), ap)
	})
}

// ListUsers needs no login, as on CloudHSM: session 0 is no session.
func (s *hsmServer) ListUsers(_ context.Context, req *hsmv1.SessionRequest) (*hsmv1.ListUsersResponse, error) {
	list := func(dev *hsm.Device, sid hsm.SessionID) (*hsmv1.ListUsersResponse, error) {
		users, err := dev.ListUsers(sid)
		if err != nil {
			return nil, err
		}
		resp := &hsmv1.ListUsersResponse{Users: make([]*hsmv1.UserInfo, 0, len(users))}
		for _, u := range users {
			resp.Users = append(resp.Users, &hsmv1.UserInfo{
				Username: u.Name, Role: u.Role.String(), Locked: u.Locked, Failures: uint32(u.Failures),
				QuorumKey: u.QuorumKey, OwnedKeys: uint32(u.OwnedKeys), SharedKeys: uint32(u.SharedKeys),
			})
		}
		return resp, nil
	}
	if req.GetSession() == 0 {
		dev := s.n.dev.Load()
		if dev == nil {
			return nil, errNotReady()
		}
		resp, err := list(dev, hsm.NoSession)
		return resp, deviceStatus(err)
	}
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ListUsersResponse, error) {
		return list(dev, cs.dev)
	})
}

func (s *hsmServer) RegisterQuorumKey(ctx context.Context, req *hsmv1.RegisterQuorumKeyRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if len(req.GetSpki()) > maxParamLen {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "public key of %d bytes is too long", len(req.GetSpki()))
		}
		return &hsmv1.Empty{}, dev.RegisterQuorumKey(ctx, cs.dev, req.GetSpki())
	})
}

func (s *hsmServer) QuorumToken(ctx context.Context, req *hsmv1.QuorumTokenRequest) (*hsmv1.QuorumTokenInfo, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.QuorumTokenInfo, error) {
		svc, err := quorumService(req.GetService())
		if err != nil {
			return nil, err
		}
		t, err := dev.QuorumToken(ctx, cs.dev, svc)
		if err != nil {
			return nil, err
		}
		return quorumTokenInfo(t), nil
	})
}

func (s *hsmServer) ListQuorumTokens(_ context.Context, req *hsmv1.SessionRequest) (*hsmv1.ListQuorumTokensResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ListQuorumTokensResponse, error) {
		ts, err := dev.ListQuorumTokens(cs.dev)
		if err != nil {
			return nil, err
		}
		resp := &hsmv1.ListQuorumTokensResponse{Tokens: make([]*hsmv1.QuorumTokenInfo, 0, len(ts))}
		for _, t := range ts {
			resp.Tokens = append(resp.Tokens, quorumTokenInfo(t))
		}
		return resp, nil
	})
}

func (s *hsmServer) DeleteQuorumToken(_ context.Context, req *hsmv1.DeleteQuorumTokenRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := name("token id", req.GetId()); err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.DeleteQuorumToken(cs.dev, req.GetId())
	})
}

func (s *hsmServer) SetQuorumValue(ctx context.Context, req *hsmv1.SetQuorumValueRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		svc, err := quorumService(req.GetService())
		if err != nil {
			return nil, err
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		if req.GetValue() > 1<<16 {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "quorum value %d out of range", req.GetValue())
		}
		return &hsmv1.Empty{}, dev.SetQuorumValue(ctx, cs.dev, svc, int(req.GetValue()), req.GetForce(), ap)
	})
}

func (s *hsmServer) QuorumValues(_ context.Context, req *hsmv1.SessionRequest) (*hsmv1.QuorumValuesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.QuorumValuesResponse, error) {
		vals, err := dev.QuorumValues(cs.dev)
		if err != nil {
			return nil, err
		}
		resp := &hsmv1.QuorumValuesResponse{Values: map[string]uint32{}}
		for svc, m := range vals {
			resp.Values[svc.String()] = uint32(m)
		}
		return resp, nil
	})
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	i := slices.IndexFunc(errs, func(e error) bool { return e != nil })
	if i < 0 {
		return nil
	}
	return errs[i]
}
