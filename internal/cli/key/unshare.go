package key

import (
	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
)

func unshare(env *cli.Env) *cobra.Command {
	return sharing(env, false)
}
