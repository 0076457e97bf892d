package crypto

import (
	"context"
	"encoding/base64"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Signed is the result of `crypto sign`.
type Signed struct {
	KeyReference string `json:"key-reference"`
	Signature    string `json:"signature"`
}

func signWith(env *cli.Env, sc scheme) *cobra.Command {
	var f signFlags
	var sigPath string
	cmd := &cobra.Command{
		Use:   sc.name,
		Short: "Sign with " + sc.title,
		Long: "Sign data with " + sc.title + ` and the private key --key-filter selects (it
must have sign=true). A user the key is shared with may sign. The signature is
printed in base64 and, with --signature-path, written raw to a file. ` + sc.note,
	}
	sc.flags(cmd, &f)
	cmd.Flags().StringVar(&sigPath, "signature-path", "", "also write the signature, raw, to this file")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		data, err := cli.ReadData(f.dataPath, f.data, "data")
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
		sig, err := s.Sign(ctx, key, mech, input)
		if err != nil {
			return nil, err
		}
		if sigPath != "" {
			if err := cli.WriteFile(sigPath, sig, 0o644, false); err != nil {
				return nil, err
			}
		}
		return Signed{KeyReference: cli.KeyRef(key), Signature: base64.StdEncoding.EncodeToString(sig)}, nil
	})
	example := "  coffer cli crypto sign " + sc.name + " --key-filter attr.label=signing-key --data-path message.txt"
	if sc.hashed != nil {
		example = "  coffer cli crypto sign " + sc.name + " --key-filter attr.label=signing-key --hash-function sha256 --data-path message.txt --signature-path message.sig"
	}
	return cli.Leaf(cmd, example)
}
