package quorum

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Value is a quorum service's value M.
type Value struct {
	Service string `json:"service"`
	Value   int    `json:"value"`
}

// SetQuorumValue returns `set-quorum-value`.
func SetQuorumValue(env *cli.Env) *cobra.Command {
	var service, approval string
	var value int
	var force bool
	cmd := &cobra.Command{
		Use:   "set-quorum-value",
		Short: "Set how many admins must approve a service's operations (admins)",
		Long: `Set the quorum value M of a service, 1 to 8 (1: no approvals needed). Raising
it above the number of admins - 2 is refused unless --force: keep two more
admins than M so that a locked-out admin cannot strand the cluster. Guarded by
the quorum-management quorum.`,
	}
	serviceFlag(cmd, &service, cli.ServiceUser, cli.ServiceQuorum)
	cmd.Flags().IntVar(&value, "value", 0, "the quorum value M, 1 to 8")
	cmd.Flags().StringVar(&approval, "approval", "", "quorum token file of service quorum, signed by the approvers, when the quorum-management value is above 1")
	cmd.Flags().BoolVar(&force, "force", false, "raise M even with fewer than M + 2 admins")
	_ = cmd.MarkFlagRequired("value")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		hsmService, err := cli.HSMService(service)
		if err != nil {
			return nil, err
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		if err := s.SetQuorumValue(ctx, hsmService, value, force, ap); err != nil {
			return nil, err
		}
		return Value{Service: service, Value: value}, nil
	})
	return cli.Leaf(cmd, `  coffer cli quorum token-sign set-quorum-value --service user --value 2
  coffer cli quorum token-sign set-quorum-value --service quorum --value 2 --approval quorum-token.json`)
}
