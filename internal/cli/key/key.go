// Package key holds the `coffer cli key` commands: generate-symmetric,
// generate-asymmetric-pair, list, delete, share, unshare, set-attribute,
// import pem, export, generate-file, wrap and unwrap. Keys are selected
// with --filter (attr.NAME=VALUE ..., key-reference=0x...); crypto users own
// and use keys, admins may list them.
//
// It reaches the cluster only through internal/client, by way of package
// cli.
package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// New returns the key command group.
func New(env *cli.Env) *cobra.Command {
	return cli.Group("key", "Create, find, share, export and wrap keys",
		generateSymmetric(env), generateAsymmetricPair(env), list(env), remove(env), share(env), unshare(env),
		setAttribute(env), importGroup(env), export(env), generateFile(env), wrap(env), unwrap(env), replicate(env))
}

// Created is the result of a command that makes one key.
type Created struct {
	Key cli.KeyRecord `json:"key"`
}

// CreatedPair is the result of a command that makes a key pair.
type CreatedPair struct {
	PublicKey  cli.KeyRecord `json:"public_key"`
	PrivateKey cli.KeyRecord `json:"private_key"`
}

// Table prints the key.
func (c Created) Table() ([]string, [][]string) { return cli.KeyHeader(), [][]string{c.Key.Row()} }

// Table prints both keys.
func (c CreatedPair) Table() ([]string, [][]string) {
	return cli.KeyHeader(), [][]string{c.PublicKey.Row(), c.PrivateKey.Row()}
}

// newKey holds the flags of a command that creates a key.
type newKey struct {
	label   string
	attrs   []string
	session bool
	share   []string
}

func (n *newKey) flags(cmd *cobra.Command, labelUsage string) {
	if labelUsage != "" {
		cmd.Flags().StringVar(&n.label, "label", "", labelUsage)
		_ = cmd.MarkFlagRequired("label")
	}
	cli.MultiFlag(cmd, &n.attrs, "attributes", "key attributes to set, NAME=VALUE (e.g. extractable=false sign=true)")
	n.common(cmd)
}

func (n *newKey) common(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&n.session, "session", false, "make a session key, gone when the session ends, instead of a token key held by every HSM")
	cli.MultiFlag(cmd, &n.share, "share-crypto-users", "crypto users to share the new key with")
}

// template is the token and label attributes, then attrs (which may
// override them), then fixed (which must hold).
func template(session bool, label string, attrs []string, fixed ...client.Attribute) ([]client.Attribute, error) {
	user, err := cli.ParseAttributes(attrs)
	if err != nil {
		return nil, err
	}
	set := map[ck.AttributeType]bool{}
	for _, a := range user {
		set[a.Type] = true
	}
	var out []client.Attribute
	if !set[ck.CKA_TOKEN] {
		out = append(out, client.Bool(ck.CKA_TOKEN, !session))
	}
	if !set[ck.CKA_LABEL] {
		out = append(out, cli.String(ck.CKA_LABEL, label))
	}
	for _, f := range fixed {
		if set[f.Type] {
			return nil, cli.Usagef("attribute %v is set by this command", f.Type)
		}
	}
	out = append(out, user...)
	return append(out, fixed...), nil
}

// shareAll shares new keys with the crypto users named.
func shareAll(ctx context.Context, s *client.Session, users []string, ids ...client.ObjectID) error {
	for _, u := range users {
		for _, id := range ids {
			if err := s.ShareKey(ctx, id, u); err != nil {
				return err
			}
		}
	}
	return nil
}

// created describes a new key.
func created(ctx context.Context, s *client.Session, id client.ObjectID) (Created, error) {
	r, err := cli.DescribeKey(ctx, s, id, true)
	return Created{Key: r}, err
}

func filterFlag(cmd *cobra.Command, p *[]string, name, what string) {
	cli.MultiFlag(cmd, p, name, what+": key-reference=0x... or attr.NAME=VALUE (e.g. attr.label=my-key)")
	_ = cmd.MarkFlagRequired(name)
}

// findKey resolves a filter flag to one key.
func findKey(ctx context.Context, s *client.Session, flag string, items []string) (client.ObjectID, error) {
	f, err := cli.ParseFilter(flag, items)
	if err != nil {
		return 0, err
	}
	return cli.FindKey(ctx, s, f)
}
