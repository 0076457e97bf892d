package cryptoki

import (
	"context"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Cluster is what a slot needs of a cluster: *client.Cluster through
// ClientCluster, or a fake in tests.
type Cluster interface {
	Login(ctx context.Context, role, username, password string) (Session, error)
	Mechanisms(ctx context.Context) ([]client.MechanismInfo, error)
	Close() error
}

// Session is what a logged-in token needs of a client.Session.
type Session interface {
	Username() string
	GenerateKey(ctx context.Context, mech client.Mechanism, tmpl []client.Attribute, opts ...client.CreateOption) (client.ObjectID, error)
	GenerateKeyPair(ctx context.Context, mech client.Mechanism, public, private []client.Attribute, opts ...client.CreateOption) (pub, priv client.ObjectID, err error)
	CreateObject(ctx context.Context, tmpl []client.Attribute, opts ...client.CreateOption) (client.ObjectID, error)
	CopyObject(ctx context.Context, src client.ObjectID, tmpl []client.Attribute, opts ...client.CreateOption) (client.ObjectID, error)
	UnwrapKey(ctx context.Context, unwrappingKey client.ObjectID, mech client.Mechanism, wrapped []byte, tmpl []client.Attribute, opts ...client.CreateOption) (client.ObjectID, error)
	DeriveKey(ctx context.Context, baseKey client.ObjectID, mech client.Mechanism, tmpl []client.Attribute, opts ...client.CreateOption) (client.ObjectID, error)
	FindObjects(ctx context.Context, tmpl []client.Attribute) ([]client.ObjectID, error)
	GetAttributes(ctx context.Context, id client.ObjectID, types []ck.AttributeType) ([]client.AttributeValue, error)
	SetAttributes(ctx context.Context, id client.ObjectID, tmpl []client.Attribute) error
	DestroyObject(ctx context.Context, id client.ObjectID) error
	Encrypt(ctx context.Context, key client.ObjectID, mech client.Mechanism, data []byte) ([]byte, error)
	// EncryptIV also returns the IV the HSM generated (AES-GCM), nil if none.
	EncryptIV(ctx context.Context, key client.ObjectID, mech client.Mechanism, data []byte) (out, iv []byte, err error)
	Decrypt(ctx context.Context, key client.ObjectID, mech client.Mechanism, data []byte) ([]byte, error)
	Sign(ctx context.Context, key client.ObjectID, mech client.Mechanism, data []byte) ([]byte, error)
	Verify(ctx context.Context, key client.ObjectID, mech client.Mechanism, data, signature []byte) error
	Digest(ctx context.Context, mech client.Mechanism, data []byte) ([]byte, error)
	WrapKey(ctx context.Context, wrappingKey client.ObjectID, mech client.Mechanism, key client.ObjectID) ([]byte, error)
	// WrapKeyIV also returns the IV the HSM generated (AES-GCM), nil if none.
	WrapKeyIV(ctx context.Context, wrappingKey client.ObjectID, mech client.Mechanism, key client.ObjectID) (out, iv []byte, err error)
	GenerateRandom(ctx context.Context, n int) ([]byte, error)
	ChangePassword(ctx context.Context, username, newPassword string, approvals *client.Approvals) error
	Begin(ctx context.Context, fn client.Function, key client.ObjectID, mech client.Mechanism) (Operation, error)
	Close(ctx context.Context) error
}

// Operation is a multi-part operation (*client.Operation).
type Operation interface {
	Update(ctx context.Context, data []byte) ([]byte, error)
	Finish(ctx context.Context, signature []byte) ([]byte, error)
	// FinishIV also returns the IV the HSM generated (AES-GCM), nil if none.
	FinishIV(ctx context.Context, signature []byte) (out, iv []byte, err error)
	Abort(ctx context.Context) error
}

// ClientCluster adapts a *client.Cluster to Cluster.
func ClientCluster(c *client.Cluster) Cluster { return clientCluster{c} }

type clientCluster struct{ c *client.Cluster }

func (c clientCluster) Login(ctx context.Context, role, username, password string) (Session, error) {
	s, err := c.c.Login(ctx, role, username, password)
	if err != nil {
		return nil, err
	}
	return clientSession{s}, nil
}

func (c clientCluster) Mechanisms(ctx context.Context) ([]client.MechanismInfo, error) {
	return c.c.Mechanisms(ctx)
}

func (c clientCluster) Close() error { return c.c.Close() }

type clientSession struct{ *client.Session }

func (s clientSession) Begin(ctx context.Context, fn client.Function, key client.ObjectID, mech client.Mechanism) (Operation, error) {
	op, err := s.Session.Begin(ctx, fn, key, mech)
	if err != nil {
		return nil, err
	}
	return op, nil
}
