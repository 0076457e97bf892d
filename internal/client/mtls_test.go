package client

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// The fake HSMs' client mTLS settings: HSM index 0 holds anchors 1 and 2,
// the others anchor 1 only (as if 2 had not reached them yet); the level is
// "cluster".

func (f *fakeHSM) ListTrustAnchors(ctx context.Context, _ *hsmv1.Empty) (*hsmv1.ListTrustAnchorsResponse, error) {
	if err := f.enter(ctx, "ListTrustAnchors"); err != nil {
		return nil, err
	}
	resp := &hsmv1.ListTrustAnchorsResponse{Anchors: []*hsmv1.TrustAnchor{{Reference: 1, Certificate: []byte("ca-1")}}}
	if f.idx == 0 {
		resp.Anchors = append(resp.Anchors, &hsmv1.TrustAnchor{Reference: 2, Certificate: []byte("ca-2")})
	}
	return resp, nil
}

func (f *fakeHSM) RegisterTrustAnchor(ctx context.Context, r *hsmv1.RegisterTrustAnchorRequest) (*hsmv1.TrustAnchor, error) {
	if err := f.session(ctx, "RegisterTrustAnchor", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.TrustAnchor{Reference: 3, Certificate: r.GetCertificate()}, nil
}

func (f *fakeHSM) DeregisterTrustAnchor(ctx context.Context, r *hsmv1.DeregisterTrustAnchorRequest) (*hsmv1.ListTrustAnchorsResponse, error) {
	if err := f.session(ctx, "DeregisterTrustAnchor", r.GetSession()); err != nil {
		return nil, err
	}
	if r.GetAll() || r.GetReference() != 1 {
		return nil, refuse(ck.CKR_ARGUMENTS_BAD, "no trust anchor with that reference")
	}
	return &hsmv1.ListTrustAnchorsResponse{Anchors: []*hsmv1.TrustAnchor{{Reference: 1, Certificate: []byte("ca-1")}}}, nil
}

func (f *fakeHSM) SetMTLSEnforcement(ctx context.Context, r *hsmv1.SetMTLSEnforcementRequest) (*hsmv1.Empty, error) {
	if err := f.session(ctx, "SetMTLSEnforcement", r.GetSession()); err != nil {
		return nil, err
	}
	if r.GetLevel() != "none" {
		return nil, refuse(ck.CKR_FUNCTION_FAILED, "client certificate not accepted")
	}
	return &hsmv1.Empty{}, nil
}

func (f *fakeHSM) GetMTLSEnforcement(ctx context.Context, r *hsmv1.SessionRequest) (*hsmv1.MTLSEnforcementResponse, error) {
	if err := f.session(ctx, "GetMTLSEnforcement", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.MTLSEnforcementResponse{Level: "cluster"}, nil
}

// ListUsers answers without a session (session 0), like the node.
func (f *fakeHSM) ListUsers(ctx context.Context, r *hsmv1.SessionRequest) (*hsmv1.ListUsersResponse, error) {
	if r.GetSession() != 0 {
		if err := f.session(ctx, "ListUsers", r.GetSession()); err != nil {
			return nil, err
		}
	} else if err := f.enter(ctx, "ListUsers"); err != nil {
		return nil, err
	}
	return &hsmv1.ListUsersResponse{Users: []*hsmv1.UserInfo{{Username: fakeUser, Role: "crypto-user", OwnedKeys: 2}}}, nil
}

// TestTrustAnchors: every HSM is asked, and each answer or refusal is kept
// apart, so a caller can tell which HSMs hold an anchor.
func TestTrustAnchors(t *testing.T) {
	w, pki := newFakeCluster(t, 3)
	c := dial(t, testConfig(w, pki))
	w.servers[2].setFail("ListTrustAnchors", refuse(ck.CKR_USER_NOT_LOGGED_IN, "client mTLS is enforced"))
	got := c.TrustAnchors(t.Context())
	if len(got) != 3 {
		t.Fatalf("%d answers, want 3", len(got))
	}
	for i, h := range got {
		if h.Address != w.servers[i].addr {
			t.Errorf("answer %d from %s, want %s", i, h.Address, w.servers[i].addr)
		}
	}
	if len(got[0].Anchors) != 2 || got[0].Anchors[1].Reference != 2 || !bytes.Equal(got[0].Anchors[1].Certificate, []byte("ca-2")) {
		t.Errorf("HSM 1: %+v", got[0])
	}
	if len(got[1].Anchors) != 1 || got[1].Err != nil {
		t.Errorf("HSM 2: %+v", got[1])
	}
	var refused *Error
	if !errors.As(got[2].Err, &refused) || refused.RV != ck.CKR_USER_NOT_LOGGED_IN {
		t.Errorf("HSM 3: %+v, want its refusal", got[2])
	}
}

func TestMTLSSessionCalls(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	ctx := t.Context()
	a, err := s.RegisterTrustAnchor(ctx, []byte("der"), nil)
	if err != nil || a.Reference != 3 || string(a.Certificate) != "der" {
		t.Fatalf("RegisterTrustAnchor = %+v, %v", a, err)
	}
	removed, err := s.DeregisterTrustAnchor(ctx, 1, false, nil)
	if err != nil || len(removed) != 1 || removed[0].Reference != 1 {
		t.Fatalf("DeregisterTrustAnchor = %+v, %v", removed, err)
	}
	if _, err := s.DeregisterTrustAnchor(ctx, 0, true, nil); Code(err) != ck.CKR_ARGUMENTS_BAD {
		t.Fatalf("DeregisterTrustAnchor all: %v", err)
	}
	if err := s.SetMTLSEnforcement(ctx, "cluster", nil); Code(err) != ck.CKR_FUNCTION_FAILED {
		t.Fatalf("SetMTLSEnforcement cluster: %v", err)
	}
	if err := s.SetMTLSEnforcement(ctx, "none", nil); err != nil {
		t.Fatal(err)
	}
	if level, err := s.MTLSEnforcement(ctx); err != nil || level != "cluster" {
		t.Fatalf("MTLSEnforcement = %q, %v", level, err)
	}
}

// TestListUsersWithoutLogin: the Cluster lists users with no session at
// all: nothing is opened or logged in on any HSM.
func TestListUsersWithoutLogin(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	users, err := c.ListUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Username != fakeUser || users[0].OwnedKeys != 2 {
		t.Fatalf("ListUsers = %+v", users)
	}
	for _, f := range w.servers {
		if f.count("OpenSession") != 0 || f.logins.Load() != 0 {
			t.Errorf("HSM %s: %d sessions opened, %d logins", f.addr, f.count("OpenSession"), f.logins.Load())
		}
	}
	if w.servers[0].count("ListUsers")+w.servers[1].count("ListUsers") != 1 {
		t.Error("ListUsers not asked exactly once")
	}
}
