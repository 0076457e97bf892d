package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Replicated is the result of `key replicate`: the key as the destination
// cluster holds it.
type Replicated struct {
	Key     cli.KeyRecord `json:"key"`
	Message string        `json:"message"`
}

// Table prints the key.
func (r Replicated) Table() ([]string, [][]string) { return cli.KeyHeader(), [][]string{r.Key.Row()} }

func replicate(env *cli.Env) *cobra.Command {
	var filter []string
	var source, destination string
	cmd := &cobra.Command{
		Use:   "replicate",
		Short: "Replicate a key from a source to a destination cluster (its owner)",
		Long: `Copy the one key --filter selects on the source cluster to the destination
cluster, masked: the key never leaves the HSMs in the clear, so a
non-extractable key replicates too. The reference, attributes, owner and
sharing stay as they are; the destination's HSMs then spread it among
themselves.

The clusters must be clones: one made from a backup of the other, or both
from one backup (they share the masking key). The key's owner, and every
crypto user it is shared with, must exist on the destination (user
replicate). Only the key's owner replicates it, logged in on both clusters:
in single-command mode as --username/COFFER_CLI_* on the source and with
DESTINATION_CLOUDHSM_ROLE and DESTINATION_CLOUDHSM_PIN (username:password)
on the destination; in the shell, ` + "`login --cluster-id`" + ` on each first.

A key the destination holds already at the same or a newer version is left
as it is ("up to date"). A change the owner could not make there (a one-way
attribute going back, CKA_TRUSTED, another owner) is refused.`,
	}
	filterFlag(cmd, &filter, "filter", "the key on the source cluster")
	cmd.Flags().StringVar(&source, "source-cluster-id", "", "the cluster the key is on")
	cmd.Flags().StringVar(&destination, "destination-cluster-id", "", "the clone cluster to copy it to")
	_ = cmd.MarkFlagRequired("filter")
	_ = cmd.MarkFlagRequired("source-cluster-id")
	_ = cmd.MarkFlagRequired("destination-cluster-id")
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		src, dst, err := env.ReplicaSessions(ctx, source, destination)
		if err != nil {
			return nil, err
		}
		id, err := findKey(ctx, src, "filter", filter)
		if err != nil {
			return nil, err
		}
		r, err := src.ExportReplica(ctx, id, destination)
		if err != nil {
			return nil, err
		}
		got, err := dst.ImportReplica(ctx, r)
		if err != nil {
			return nil, err
		}
		env.SettleCluster(ctx, destination)
		rec, err := cli.DescribeKey(ctx, dst, got.Object, true)
		if err != nil {
			return nil, err
		}
		msg := "Successfully replicated key"
		if !got.Applied {
			msg = "The key on the destination cluster is up to date"
		}
		return Replicated{Key: rec, Message: msg}, nil
	})
	return cli.Leaf(cmd, `  coffer cli key replicate --filter attr.label=example-key --source-cluster-id cluster-1234abcdefg --destination-cluster-id cluster-2345bcdefgh
  DESTINATION_CLOUDHSM_ROLE=crypto-user DESTINATION_CLOUDHSM_PIN=alice:password \
      coffer cli --username alice --role crypto-user key replicate --filter attr.label=example-key \
      --source-cluster-id cluster-1234abcdefg --destination-cluster-id cluster-2345bcdefgh`)
}
