package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// FileGenerated is the result of `key generate-file`.
type FileGenerated struct {
	KeyReference string `json:"key-reference"`
	Path         string `json:"path"`
	Encoding     string `json:"encoding"`
}

func generateFile(env *cli.Env) *cobra.Command {
	var filter []string
	var path, encoding string
	cmd := &cobra.Command{
		Use:   "generate-file",
		Short: "Write the public key of a key pair to a PEM file",
		Long: `Write the public key of the one key --filter selects (a public key, or the
public half of a private key) to --path as PEM ("PUBLIC KEY"); no private key
material leaves the HSMs.

CloudHSM's --encoding reference-pem writes a "fake PEM" private key that names
the key for its OpenSSL dynamic engine. CloudHSM does not document that
file's layout, so Coffer does not guess at one: the encoding is refused
(exit code 2). Use the PKCS#11 module instead (for OpenSSL, a PKCS#11
provider or engine with a pkcs11: URI naming the key's label).`,
	}
	filterFlag(cmd, &filter, "filter", "the key")
	cmd.Flags().StringVar(&path, "path", "", "the file to write")
	cmd.Flags().StringVar(&encoding, "encoding", "pem", "the file's encoding: pem (reference-pem is refused)")
	_ = cmd.MarkFlagRequired("path")
	cli.Enum(cmd, "encoding", "pem")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		switch encoding {
		case "pem":
		case "reference-pem":
			return nil, cli.Unsupported("--encoding reference-pem",
				"CloudHSM does not document the layout of its reference (fake) PEM, so Coffer cannot write one faithfully; "+
					"use the PKCS#11 module (for OpenSSL, a PKCS#11 provider or engine with a pkcs11: URI)")
		default:
			return nil, cli.Usagef("--encoding %q: want pem", encoding)
		}
		id, err := findKey(ctx, s, "filter", filter)
		if err != nil {
			return nil, err
		}
		der, err := s.ExportPublicKey(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := cli.WriteFile(path, cli.PublicKeyPEM(der), 0o644, false); err != nil {
			return nil, err
		}
		return FileGenerated{KeyReference: cli.KeyRef(id), Path: path, Encoding: encoding}, nil
	})
	return cli.Leaf(cmd, `  coffer cli key generate-file --encoding pem --path ec-pub.pem --filter attr.label=ec-priv`)
}
