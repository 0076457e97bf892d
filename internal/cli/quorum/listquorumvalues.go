package quorum

import (
	"context"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Values are the quorum values by service.
type Values map[string]int

// Table prints one service per row.
func (v Values) Table() ([]string, [][]string) {
	var rows [][]string
	for s, m := range v {
		rows = append(rows, []string{s, strconv.Itoa(m)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	return []string{"SERVICE", "QUORUM-VALUE"}, rows
}

// ListQuorumValues returns `list-quorum-values`.
func ListQuorumValues(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list-quorum-values",
		Short: "List the quorum value of each service",
		Long:  `List the quorum value M of each service (1: no approvals needed). Any logged-in user may.`,
	}
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		values, err := s.QuorumValues(ctx)
		if err != nil {
			return nil, err
		}
		out := Values{}
		for service, m := range values {
			out[cli.CLIService(service)] = m
		}
		return out, nil
	})
	return cli.Leaf(cmd, `  coffer cli quorum token-sign list-quorum-values`)
}
