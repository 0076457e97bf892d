package user

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// UnlockResult is the result of `user unlock`.
type UnlockResult struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Locked   bool   `json:"locked"`
}

func unlock(env *cli.Env) *cobra.Command {
	var username, role, password, approval string
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Unlock a user locked after failed logins (admins only)",
		Long: `Unlock a user that too many failed logins locked, by setting a new password for
it: an admin's password reset clears the failure count and the lock (there is
no unlock that keeps the old password). The user's open sessions are logged
out. Guarded by the user-management quorum. When every admin is locked, see
` + "`coffer hsm unlock-admin`" + `, run on a stopped HSM's host.`,
	}
	userFlags(cmd, &username, &role, "the user's role: admin or crypto-user")
	cmd.Flags().StringVar(&password, "password", "", "the user's new password, 7 to 32 characters (asked for if not given)")
	approvalFlag(cmd, &approval)
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		if username == s.Username() {
			return nil, cli.Usagef("you cannot unlock yourself: another admin must run this")
		}
		if err := setPassword(ctx, env, s, username, role, password, approval); err != nil {
			return nil, err
		}
		return UnlockResult{Username: username, Role: role, Locked: false}, nil
	})
	return cli.Leaf(cmd, `  coffer cli user unlock --username alice --role crypto-user --password 'N3w-passw0rd'`)
}
