// Package quorum holds the `coffer cli quorum token-sign` commands: quorum
// tokens (generate, approve, list, delete) and the quorum values M that
// guard user management and quorum management (set-quorum-value,
// list-quorum-values).
//
// An operation a quorum guards runs once M admins approved it: the acting
// admin generates a token, each approver signs the token's data with the
// private key whose public half it registered (`user change-quorum
// token-sign register`), and the admin passes the signed token file with
// --approval. Tokens live on the HSM that issued them, for ten minutes by
// default.
//
// It reaches the cluster only through internal/client, by way of package
// cli.
package quorum

import (
	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// New returns the quorum command group.
func New(env *cli.Env) *cobra.Command {
	return cli.Group("quorum", "Quorum authentication (M of N admins)", TokenSign(env))
}

// TokenSign returns the token-sign group with every quorum command.
func TokenSign(env *cli.Env) *cobra.Command {
	return cli.Group("token-sign", "Quorum tokens and quorum values",
		generate(env), approve(env), list(env), remove(env), SetQuorumValue(env), ListQuorumValues(env))
}

func serviceFlag(cmd *cobra.Command, p *string, values ...string) {
	cmd.Flags().StringVar(p, "service", "", "the quorum service: user (create and delete users, change another's password) or quorum (set quorum values)")
	_ = cmd.MarkFlagRequired("service")
	cli.Enum(cmd, "service", values...)
}
