package cluster

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// mtlsHint says what the cluster does instead of client mTLS.
const mtlsHint = "Coffer HSMs authenticate themselves to clients over TLS 1.3 but do not yet ask clients for certificates: who may do what is decided by login (and quorum)"

func mtls(env *cli.Env) *cobra.Command {
	var path, ref, level string
	var all bool
	unsupported := func(what string) func(*cobra.Command, []string) error {
		return cli.Run(env, cli.NeedNothing, func(context.Context, *client.Session) (any, error) {
			return nil, cli.Unsupported("client mTLS ("+what+")", mtlsHint)
		})
	}
	register := &cobra.Command{Use: "register-trust-anchor", Short: "Register a trust anchor for client certificates (not supported yet)", RunE: unsupported("register-trust-anchor")}
	register.Flags().StringVar(&path, "path", "", "the CA certificate, PEM")
	list := &cobra.Command{Use: "list-trust-anchors", Short: "List the trust anchors for client certificates (not supported yet)", RunE: unsupported("list-trust-anchors")}
	deregister := &cobra.Command{Use: "deregister-trust-anchor", Short: "Deregister a trust anchor (not supported yet)", RunE: unsupported("deregister-trust-anchor")}
	deregister.Flags().StringVar(&ref, "certificate-reference", "", "the trust anchor's reference")
	deregister.Flags().BoolVar(&all, "all", false, "every trust anchor")
	set := &cobra.Command{Use: "set-enforcement", Short: "Require client certificates (not supported yet)", RunE: unsupported("set-enforcement")}
	set.Flags().StringVar(&level, "level", "", "none or cluster")
	cli.Enum(set, "level", "none", "cluster")
	get := &cobra.Command{Use: "get-enforcement", Short: "Show whether client certificates are required (not supported yet)", RunE: unsupported("get-enforcement")}
	for _, c := range []*cobra.Command{register, list, deregister, set, get} {
		c.Long = c.Short + `. The CloudHSM CLI manages here the CAs whose client
certificates the HSMs accept. ` + mtlsHint + `, so this command fails with exit
code 2.`
	}
	return cli.Group("mtls", "Client certificate authentication (mutual TLS): not supported by this cluster yet",
		cli.Leaf(register, "  coffer cli cluster mtls register-trust-anchor --path client-ca.crt"),
		cli.Leaf(list, "  coffer cli cluster mtls list-trust-anchors"),
		cli.Leaf(deregister, "  coffer cli cluster mtls deregister-trust-anchor --certificate-reference 0x01"),
		cli.Leaf(set, "  coffer cli cluster mtls set-enforcement --level cluster"),
		cli.Leaf(get, "  coffer cli cluster mtls get-enforcement"))
}
