package crypto

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Verified is the result of a verification that succeeded; one that fails
// is an error (CKR_SIGNATURE_INVALID).
type Verified struct {
	KeyReference string `json:"key-reference"`
	Verified     bool   `json:"verified"`
}

func verifyWith(env *cli.Env, sc scheme) *cobra.Command {
	var f signFlags
	var sigPath, sig string
	cmd := &cobra.Command{
		Use:   sc.name,
		Short: "Verify a signature made with " + sc.title,
		Long: "Verify a " + sc.title + ` signature of data with the public key --key-filter
selects (it must have verify=true). The command fails (exit code 1,
CKR_SIGNATURE_INVALID) if the signature does not match. ` + sc.note,
	}
	sc.flags(cmd, &f)
	cmd.Flags().StringVar(&sigPath, "signature-path", "", "file holding the signature, raw or base64")
	cmd.Flags().StringVar(&sig, "signature", "", "the signature itself, in base64 (a file: --signature-path)")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		data, err := cli.ReadData(f.dataPath, f.data, "data")
		if err != nil {
			return nil, err
		}
		signature, err := cli.ReadEncoded(sigPath, sig, "signature")
		if err != nil {
			return nil, err
		}
		mech, input, err := sc.mechanism(&f, data)
		if err != nil {
			return nil, err
		}
		fl, err := cli.ParseFilter("key-filter", f.filter)
		if err != nil {
			return nil, err
		}
		key, err := cli.FindKey(ctx, s, fl)
		if err != nil {
			return nil, err
		}
		if err := s.Verify(ctx, key, mech, input, signature); err != nil {
			return nil, err
		}
		return Verified{KeyReference: cli.KeyRef(key), Verified: true}, nil
	})
	example := "  coffer cli crypto verify " + sc.name + " --key-filter attr.label=verify-key --data-path message.txt --signature-path message.sig"
	if sc.hashed != nil {
		example = "  coffer cli crypto verify " + sc.name + " --key-filter attr.label=verify-key --hash-function sha256 --data-path message.txt --signature-path message.sig"
	}
	return cli.Leaf(cmd, example)
}
