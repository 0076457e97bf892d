package client

import (
	"context"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Requests that need no login: they run outside any session.

// ListUsers lists the users of the cluster without logging in (as on
// CloudHSM, anyone may).
func (c *Cluster) ListUsers(ctx context.Context) ([]UserInfo, error) {
	var r *hsmv1.ListUsersResponse
	_, err := c.invoke(ctx, nil, call{op: "list users", retry: true}, func(ctx context.Context, m *member, _ uint64) (err error) {
		r, err = m.rpc.ListUsers(ctx, &hsmv1.SessionRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return usersFrom(r), nil
}
