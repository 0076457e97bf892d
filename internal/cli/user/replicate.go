package user

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Replicated is the result of `user replicate`.
type Replicated struct {
	User    Result `json:"user"`
	Message string `json:"message"`
}

func replicate(env *cli.Env) *cobra.Command {
	var username, role, source, destination, approval string
	cmd := &cobra.Command{
		Use:   "replicate",
		Short: "Replicate a user from a source to a destination cluster (admins only)",
		Long: `Copy a user of the source cluster to the destination cluster as it is: its
role, password, lock and quorum key. The clusters must be clones (one made
from a backup of the other, or both from one backup). An admin runs it,
logged in on both clusters: in single-command mode as --username/COFFER_CLI_*
on the source and with DESTINATION_CLOUDHSM_ROLE and DESTINATION_CLOUDHSM_PIN
(username:password) on the destination; in the shell, ` + "`login --cluster-id`" + `
on each first. It is a user change on the destination: when its
user-management quorum value is above 1, pass --approval with a quorum token
of the destination. A user the destination has with another role is not
replaced.`,
	}
	userFlags(cmd, &username, &role, "the user's role on the source: admin or crypto-user")
	cmd.Flags().StringVar(&source, "source-cluster-id", "", "the cluster the user is on")
	cmd.Flags().StringVar(&destination, "destination-cluster-id", "", "the clone cluster to copy it to")
	_ = cmd.MarkFlagRequired("source-cluster-id")
	_ = cmd.MarkFlagRequired("destination-cluster-id")
	approvalFlag(cmd, &approval)
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		if err := cli.CheckRole(role); err != nil {
			return nil, err
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		src, dst, err := env.ReplicaSessions(ctx, source, destination)
		if err != nil {
			return nil, err
		}
		users, err := src.ListUsers(ctx)
		if err != nil {
			return nil, err
		}
		found := false
		for _, u := range users {
			if u.Username == username {
				if u.Role != role {
					return nil, cli.Failf("%s is a %s on cluster %s, not a %s", username, u.Role, source, role)
				}
				found = true
			}
		}
		if !found {
			return nil, cli.Failf("no user %s on cluster %s", username, source)
		}
		r, err := src.ExportUserReplica(ctx, username, destination)
		if err != nil {
			return nil, err
		}
		got, err := dst.ImportUserReplica(ctx, r, ap)
		if err != nil {
			return nil, err
		}
		env.SettleCluster(ctx, destination)
		msg := "Successfully replicated user"
		if !got.Applied {
			msg = fmt.Sprintf("The user on cluster %s is up to date", destination)
		}
		return Replicated{User: Result{Username: username, Role: role}, Message: msg}, nil
	})
	return cli.Leaf(cmd, `  coffer cli user replicate --username alice --role crypto-user --source-cluster-id cluster-1234abcdefg --destination-cluster-id cluster-2345bcdefgh`)
}
