package user

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Entry is one user of `user list`. Only a logged-in admin learns more than
// the name and role: the other fields are then set, and otherwise left out.
type Entry struct {
	Username      string     `json:"username"`
	Role          string     `json:"role"`
	Locked        *bool      `json:"locked,omitzero"`
	LoginFailures *int       `json:"login-failures,omitzero"`
	Quorum        []Strategy `json:"quorum,omitzero"`
	OwnedKeys     *int       `json:"owned-keys,omitzero"`
	SharedKeys    *int       `json:"shared-keys,omitzero"`
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

// detailed reports whether the list has an admin's details.
func (l List) detailed() bool { return len(l.Users) > 0 && l.Users[0].Locked != nil }

// Table prints one user per row: names and roles, and an admin's details
// when the list has them.
func (l List) Table() ([]string, [][]string) {
	rows := make([][]string, len(l.Users))
	if !l.detailed() {
		for i, u := range l.Users {
			rows[i] = []string{u.Username, u.Role}
		}
		return []string{"USERNAME", "ROLE"}, rows
	}
	for i, u := range l.Users {
		q := "-"
		if len(u.Quorum) > 0 {
			q = u.Quorum[0].Strategy
		}
		rows[i] = []string{u.Username, u.Role, strconv.FormatBool(deref(u.Locked)), strconv.Itoa(deref(u.LoginFailures)), q,
			strconv.Itoa(deref(u.OwnedKeys)), strconv.Itoa(deref(u.SharedKeys))}
	}
	return []string{"USERNAME", "ROLE", "LOCKED", "LOGIN-FAILURES", "QUORUM", "OWNED-KEYS", "SHARED-KEYS"}, rows
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// entries converts the HSM's list; detail says whether it holds an admin's
// details (the HSM gives them to admins only).
func entries(users []client.UserInfo, detail bool) List {
	out := List{Users: make([]Entry, len(users))}
	for i, u := range users {
		e := Entry{Username: u.Username, Role: u.Role}
		if detail {
			e.Locked, e.LoginFailures = &u.Locked, &u.Failures
			e.OwnedKeys, e.SharedKeys = &u.OwnedKeys, &u.SharedKeys
			e.Quorum = []Strategy{}
			if u.QuorumKey {
				e.Quorum = append(e.Quorum, Strategy{Strategy: "token-sign", Status: "enabled"})
			}
		}
		out.Users[i] = e
	}
	return out
}

func list(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the users of the cluster",
		Long: `List every user with its role. Anyone may list names and roles, with no login.
Logged in as an admin (or with an admin's credentials), the list also shows
whether each user is locked after failed logins and how many failed since its
last login, whether it registered a quorum key (token-sign), and how many
token keys it owns and has shared with it.`,
	}
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		if _, _, ok := env.LoggedIn(); ok || !env.Interactive && env.Creds.Username != "" {
			s, err := env.Session(ctx)
			if err != nil {
				return nil, err
			}
			users, err := s.ListUsers(ctx)
			if err != nil {
				return nil, err
			}
			_, role, _ := env.LoggedIn()
			return entries(users, role == cli.RoleAdmin), nil
		}
		c, err := env.Cluster(ctx)
		if err != nil {
			return nil, err
		}
		users, err := c.ListUsers(ctx)
		if err != nil {
			return nil, err
		}
		return entries(users, false), nil
	})
	return cli.Leaf(cmd, `  coffer cli user list
  coffer cli --username admin --role admin --output table user list`)
}
