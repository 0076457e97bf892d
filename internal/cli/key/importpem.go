package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func importGroup(env *cli.Env) *cobra.Command {
	return cli.Group("import", "Import a key made outside the HSMs (crypto users)", importPEM(env))
}

func importPEM(env *cli.Env) *cobra.Command {
	var n newKey
	var path, class string
	cmd := &cobra.Command{
		Use:   "pem",
		Short: "Import a public or private key from a PEM file",
		Long: `Import an RSA, EC or Ed25519 key from PEM: PUBLIC KEY, RSA PUBLIC KEY, PRIVATE
KEY (PKCS #8), RSA PRIVATE KEY or EC PRIVATE KEY. An imported key is not local
(attr.local=false), so never-extractable and always-sensitive are false.
--key-type-class, if given, must match what the file holds.`,
	}
	cmd.Flags().StringVar(&path, "path", "", "the PEM file")
	_ = cmd.MarkFlagRequired("path")
	cmd.Flags().StringVar(&class, "key-type-class", "", "what the file must hold: rsa-public, ec-public, ed25519-public, rsa-private, ec-private, ed25519-private")
	cli.Enum(cmd, "key-type-class", "rsa-public", "ec-public", "ed25519-public", "rsa-private", "ec-private", "ed25519-private")
	n.flags(cmd, "the key's label")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		k, err := cli.ReadPEMKey(path)
		if err != nil {
			return nil, err
		}
		if class != "" && class != k.KeyTypeClass() {
			return nil, cli.Usagef("--key-type-class %s, but %s holds an %s key", class, path, k.KeyTypeClass())
		}
		tmpl, err := template(n.session, n.label, n.attrs)
		if err != nil {
			return nil, err
		}
		format := client.SPKI
		if k.Private {
			format = client.PKCS8
		}
		id, err := s.ImportKey(ctx, format, k.DER, tmpl)
		if err != nil {
			return nil, err
		}
		if err := shareAll(ctx, s, n.share, id); err != nil {
			return nil, err
		}
		return created(ctx, s, id)
	})
	return cli.Leaf(cmd, `  coffer cli key import pem --path partner.pub --label partner-key
  coffer cli key import pem --path signing.key --label signing --key-type-class ec-private --attributes extractable=false`)
}
