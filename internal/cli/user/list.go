package user

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Entry is one user of `user list`.
type Entry struct {
	Username      string     `json:"username"`
	Role          string     `json:"role"`
	Locked        bool       `json:"locked"`
	LoginFailures int        `json:"login-failures"`
	Quorum        []Strategy `json:"quorum"`
	OwnedKeys     int        `json:"owned-keys"`
	SharedKeys    int        `json:"shared-keys"`
}

// Strategy is a quorum strategy a user registered.
type Strategy struct {
	Strategy string `json:"strategy"`
	Status   string `json:"status"`
}

// List is the result of `user list`.
type List struct {
	Users []Entry `json:"users"`
}

// Table prints one user per row.
func (l List) Table() ([]string, [][]string) {
	rows := make([][]string, len(l.Users))
	for i, u := range l.Users {
		q := "-"
		if len(u.Quorum) > 0 {
			q = u.Quorum[0].Strategy
		}
		rows[i] = []string{u.Username, u.Role, strconv.FormatBool(u.Locked), strconv.Itoa(u.LoginFailures), q,
			strconv.Itoa(u.OwnedKeys), strconv.Itoa(u.SharedKeys)}
	}
	return []string{"USERNAME", "ROLE", "LOCKED", "LOGIN-FAILURES", "QUORUM", "OWNED-KEYS", "SHARED-KEYS"}, rows
}

func list(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the users of the cluster",
		Long: `List every user: role, whether it is locked after failed logins, whether it
registered a quorum key (token-sign), and how many token keys it owns and has
shared with it. Anyone may list: no login needed.`,
	}
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		c, err := env.Cluster(ctx)
		if err != nil {
			return nil, err
		}
		users, err := c.ListUsers(ctx)
		if err != nil {
			return nil, err
		}
		out := List{Users: make([]Entry, len(users))}
		for i, u := range users {
			e := Entry{Username: u.Username, Role: u.Role, Locked: u.Locked, LoginFailures: u.Failures,
				Quorum: []Strategy{}, OwnedKeys: u.OwnedKeys, SharedKeys: u.SharedKeys}
			if u.QuorumKey {
				e.Quorum = append(e.Quorum, Strategy{Strategy: "token-sign", Status: "enabled"})
			}
			out.Users[i] = e
		}
		return out, nil
	})
	return cli.Leaf(cmd, `  coffer cli user list
  coffer cli --output table user list`)
}
