package crypto

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func macVerify(env *cli.Env) *cobra.Command {
	var f macFlags
	var macPath, mac string
	cmd := &cobra.Command{
		Use:   "hmac",
		Short: "Verify an HMAC",
		Long: `Check the HMAC of data with the generic secret key --key-filter selects (it
must have verify=true). The command fails (exit code 1, CKR_SIGNATURE_INVALID)
if the MAC does not match.`,
	}
	f.register(cmd)
	cmd.Flags().StringVar(&macPath, "mac-path", "", "file holding the MAC, raw or base64")
	cmd.Flags().StringVar(&mac, "mac", "", "the MAC itself, in base64 (a file: --mac-path)")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		want, err := cli.ReadEncoded(macPath, mac, "mac")
		if err != nil {
			return nil, err
		}
		key, mech, data, err := f.prepare(ctx, s)
		if err != nil {
			return nil, err
		}
		if err := s.Verify(ctx, key, mech, data, want); err != nil {
			return nil, err
		}
		return Verified{KeyReference: cli.KeyRef(key), Verified: true}, nil
	})
	return cli.Leaf(cmd, `  coffer cli crypto mac verify hmac --key-filter attr.label=hmac-key --hash-function sha256 --data-path message.txt --mac-path message.mac`)
}
