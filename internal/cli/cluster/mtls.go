package cluster

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Cluster coverage of a trust anchor: whether every HSM of the cluster
// configuration holds it.
const (
	CoverageFull    = "full"
	CoveragePartial = "partial"
)

// TrustAnchor is a trust anchor as `cluster mtls` prints it.
type TrustAnchor struct {
	Reference   string `json:"certificate-reference"`
	Certificate string `json:"certificate"` // PEM
	Coverage    string `json:"cluster-coverage"`
}

// Registered is the result of `cluster mtls register-trust-anchor`.
type Registered struct {
	TrustAnchor TrustAnchor `json:"trust_anchor"`
}

// Anchors is the result of `cluster mtls list-trust-anchors`.
type Anchors struct {
	TrustAnchors []TrustAnchor `json:"trust_anchors"`
}

// Table prints one anchor per row, with its subject instead of its PEM.
func (a Anchors) Table() ([]string, [][]string) {
	rows := make([][]string, len(a.TrustAnchors))
	for i, t := range a.TrustAnchors {
		subject := "?"
		if blk, _ := pem.Decode([]byte(t.Certificate)); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
				subject = c.Subject.String()
			}
		}
		rows[i] = []string{t.Reference, subject, t.Coverage}
	}
	return []string{"CERTIFICATE-REFERENCE", "SUBJECT", "CLUSTER-COVERAGE"}, rows
}

// Deregistered is the result of `cluster mtls deregister-trust-anchor`.
type Deregistered struct {
	Message      string   `json:"message"`
	Deregistered []string `json:"deregistered"` // references
}

// Enforcement is the result of `cluster mtls get-enforcement` and
// `set-enforcement`.
type Enforcement struct {
	Level string `json:"mtls-enforcement-level"`
}

// mtlsLong is what every mtls command's help says about the feature.
const mtlsLong = `

Client mutual TLS: the cluster keeps up to two trust anchors, CA
certificates (EC P-256, P-384, P-521 or RSA 2048, 3072, 4096), and an
enforcement level. At level "cluster" every client connection must present a
certificate issued by a registered trust anchor; configure one with
` + "`coffer configure cli|pkcs11 --client-cert-hsm-tls-file CERT --client-key-hsm-tls-file KEY`" + `.
Anchors and level are cluster settings: a change reaches every HSM before the
command returns, and is audited. Changes are admins' and, when the
quorum-management quorum value is above 1, need --approval (a token of
service quorum).`

func mtls(env *cli.Env) *cobra.Command {
	return cli.Group("mtls", "Client certificate authentication (mutual TLS): trust anchors and enforcement",
		registerTrustAnchor(env), listTrustAnchors(env), deregisterTrustAnchor(env), setEnforcement(env), getEnforcement(env))
}

func registerTrustAnchor(env *cli.Env) *cobra.Command {
	var path, approval string
	cmd := &cobra.Command{
		Use:   "register-trust-anchor",
		Short: "Register a CA whose client certificates the HSMs accept (admins)",
		Long: `Register a trust anchor: a CA certificate (PEM or DER) whose client
certificates the HSMs accept. At most two are registered, each once. The
output says whether every HSM holds it (cluster-coverage full) or not yet
(partial).` + mtlsLong,
	}
	cmd.Flags().StringVar(&path, "path", "", "the CA certificate, PEM (or DER)")
	cmd.Flags().StringVar(&approval, "approval", "", "quorum token file of service quorum, signed by the approvers, when the quorum-management value is above 1")
	_ = cmd.MarkFlagRequired("path")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		der, err := readCertificate(path)
		if err != nil {
			return nil, err
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		a, err := s.RegisterTrustAnchor(ctx, der, ap)
		if err != nil {
			return nil, err
		}
		c, err := env.Cluster(ctx)
		if err != nil {
			return nil, err
		}
		out := TrustAnchor{Reference: formatRef(a.Reference), Certificate: certPEM(a.Certificate), Coverage: CoveragePartial}
		env.Settle(ctx)
		if list, err := mergeAnchors(c.TrustAnchors(ctx)); err == nil {
			for _, t := range list {
				if t.Reference == out.Reference && t.Certificate == out.Certificate {
					out.Coverage = t.Coverage
				}
			}
		}
		return Registered{TrustAnchor: out}, nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster mtls register-trust-anchor --path client-ca.crt
  coffer cli cluster mtls register-trust-anchor --path client-ca.crt --approval quorum-token.json`)
}

func listTrustAnchors(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list-trust-anchors",
		Short: "List the trust anchors for client certificates (no login needed)",
		Long: `List the registered trust anchors with, for each, whether every HSM in the
cluster configuration holds it (cluster-coverage full) or only some
(partial). No login needed.` + mtlsLong,
	}
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		c, err := env.Cluster(ctx)
		if err != nil {
			return nil, err
		}
		list, err := mergeAnchors(c.TrustAnchors(ctx))
		if err != nil {
			return nil, err
		}
		return Anchors{TrustAnchors: list}, nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster mtls list-trust-anchors
  coffer cli --output table cluster mtls list-trust-anchors`)
}

func deregisterTrustAnchor(env *cli.Env) *cobra.Command {
	var ref, approval string
	var all bool
	cmd := &cobra.Command{
		Use:   "deregister-trust-anchor",
		Short: "Deregister a trust anchor, or all of them (admins)",
		Long: `Deregister the trust anchor --certificate-reference names (as
list-trust-anchors shows it, e.g. 0x01), or every one with --all. While the
enforcement level is cluster the last trust anchor cannot go: set the level
to none first.` + mtlsLong,
	}
	cmd.Flags().StringVar(&ref, "certificate-reference", "", "the trust anchor's reference, e.g. 0x01")
	cmd.Flags().BoolVar(&all, "all", false, "every trust anchor")
	cmd.Flags().StringVar(&approval, "approval", "", "quorum token file of service quorum, signed by the approvers, when the quorum-management value is above 1")
	cmd.MarkFlagsMutuallyExclusive("certificate-reference", "all")
	cmd.MarkFlagsOneRequired("certificate-reference", "all")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		var n uint32
		if !all {
			var err error
			if n, err = parseRef(ref); err != nil {
				return nil, err
			}
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		removed, err := s.DeregisterTrustAnchor(ctx, n, all, ap)
		if err != nil {
			return nil, err
		}
		out := Deregistered{Deregistered: []string{}}
		for _, a := range removed {
			out.Deregistered = append(out.Deregistered, formatRef(a.Reference))
		}
		out.Message = fmt.Sprintf("Successfully deregistered %d trust anchor(s)", len(removed))
		return out, nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster mtls deregister-trust-anchor --certificate-reference 0x01
  coffer cli cluster mtls deregister-trust-anchor --all`)
}

func setEnforcement(env *cli.Env) *cobra.Command {
	var level, approval string
	cmd := &cobra.Command{
		Use:   "set-enforcement",
		Short: "Require client certificates (cluster) or not (none) (admins)",
		Long: `Set the mTLS enforcement level. At "cluster" every connection to every HSM
must present a client certificate issued by a registered trust anchor; at
"none" a client certificate is optional. To keep an admin from locking
everyone out, "cluster" needs a registered trust anchor and that this CLI
itself connects with such a certificate (configure it first). The level
applies to new requests at once, no restart needed.` + mtlsLong,
	}
	cmd.Flags().StringVar(&level, "level", "", "none or cluster")
	cmd.Flags().StringVar(&approval, "approval", "", "quorum token file of service quorum, signed by the approvers, when the quorum-management value is above 1")
	_ = cmd.MarkFlagRequired("level")
	cli.Enum(cmd, "level", "none", "cluster")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		if level != "none" && level != "cluster" {
			return nil, cli.Usagef("--level %q: want none or cluster", level)
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		if err := s.SetMTLSEnforcement(ctx, level, ap); err != nil {
			return nil, err
		}
		return Enforcement{Level: level}, nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster mtls set-enforcement --level cluster
  coffer cli cluster mtls set-enforcement --level none`)
}

func getEnforcement(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get-enforcement",
		Short: "Show whether client certificates are required (admins, crypto users)",
		Long:  `Show the mTLS enforcement level: none or cluster.` + mtlsLong,
	}
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		level, err := s.MTLSEnforcement(ctx)
		if err != nil {
			return nil, err
		}
		return Enforcement{Level: level}, nil
	})
	return cli.Leaf(cmd, "  coffer cli cluster mtls get-enforcement")
}

// readCertificate reads the first certificate of a PEM file, or a DER file.
func readCertificate(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Failf("%w", err)
	}
	der := b
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			der = blk.Bytes
			break
		}
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, cli.Failf("%s: no certificate (want PEM \"CERTIFICATE\" or DER): %w", path, err)
	}
	return der, nil
}

func certPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// formatRef shows a reference as CloudHSM does: 0x01.
func formatRef(ref uint32) string { return fmt.Sprintf("0x%02x", ref) }

// parseRef reads 0x01 (or 1).
func parseRef(s string) (uint32, error) {
	digits, base := s, 10
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		digits, base = h, 16
	}
	n, err := strconv.ParseUint(digits, base, 32)
	if err != nil || n == 0 {
		return 0, cli.Usagef("--certificate-reference %q: want a reference as list-trust-anchors shows it, e.g. 0x01", s)
	}
	return uint32(n), nil
}

// mergeAnchors joins the HSMs' answers: each anchor once, by reference,
// with full coverage if every HSM of the configuration holds it. It fails
// only if no HSM answered.
func mergeAnchors(answers []client.HSMTrustAnchors) ([]TrustAnchor, error) {
	type key struct {
		ref uint32
		der string
	}
	held := map[key]int{}
	var errs []error
	for _, h := range answers {
		if h.Err != nil {
			errs = append(errs, h.Err)
			continue
		}
		for _, a := range h.Anchors {
			held[key{a.Reference, string(a.Certificate)}]++
		}
	}
	if len(errs) == len(answers) {
		if len(errs) == 0 {
			return nil, cli.Failf("no HSM in the cluster configuration")
		}
		return nil, errors.Join(errs...)
	}
	out := make([]TrustAnchor, 0, len(held))
	for k, n := range held {
		cov := CoveragePartial
		if n == len(answers) {
			cov = CoverageFull
		}
		out = append(out, TrustAnchor{Reference: formatRef(k.ref), Certificate: certPEM([]byte(k.der)), Coverage: cov})
	}
	slices.SortFunc(out, func(a, b TrustAnchor) int {
		return cmp.Or(cmp.Compare(len(a.Reference), len(b.Reference)), strings.Compare(a.Reference, b.Reference),
			bytes.Compare([]byte(a.Certificate), []byte(b.Certificate)))
	})
	return out, nil
}
