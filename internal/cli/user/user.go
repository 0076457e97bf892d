// Package user holds the `coffer cli user` commands: create, delete, list,
// change-password, unlock and change-quorum token-sign register. Admins
// manage users; any user may change its own password.
//
// It reaches the cluster only through internal/client, by way of package
// cli.
package user

import (
	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// New returns the user command group.
func New(env *cli.Env) *cobra.Command {
	return cli.Group("user", "Manage the users of the cluster",
		create(env), remove(env), list(env), changePassword(env), unlock(env), changeQuorum(env), replicate(env))
}

// Result names the user a command acted on.
type Result struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

// userFlags are the flags that name a user.
func userFlags(cmd *cobra.Command, username, role *string, roleUsage string) {
	cmd.Flags().StringVar(username, "username", "", "the user's name: 1 to 31 of A-Z a-z 0-9 _ -")
	cmd.Flags().StringVar(role, "role", "", roleUsage)
	_ = cmd.MarkFlagRequired("username")
	_ = cmd.MarkFlagRequired("role")
	cli.Enum(cmd, "role", cli.RoleAdmin, cli.RoleCryptoUser)
}

func approvalFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "approval", "", "quorum token file signed by the approvers (from `quorum token-sign generate` and `approve`), when the user-management quorum value is above 1")
}
