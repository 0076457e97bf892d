// Package cluster holds the `coffer cli cluster` commands: activate (the
// pre-admin sets the admin's password), info (the HSMs, their state and sync
// lag), the quorum values (also under `quorum token-sign`), and mtls: the
// trust anchors for client certificates and whether the HSMs require one;
// replication-link: the links that keep keys replicated between clones.
//
// It reaches the cluster only through internal/client, by way of package
// cli.
package cluster

import (
	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/cli/quorum"
)

// New returns the cluster command group.
func New(env *cli.Env) *cobra.Command {
	return cli.Group("cluster", "Activate and inspect the cluster",
		activate(env), info(env), mtls(env), replicationLink(env),
		cli.Group("quorum", "The cluster's quorum values",
			cli.Group("token-sign", "Quorum values of the token-sign strategy",
				quorum.SetQuorumValue(env), quorum.ListQuorumValues(env))))
}
