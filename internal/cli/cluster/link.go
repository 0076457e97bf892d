package cluster

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Link is a replication link as `cluster replication-link list` and
// `cluster info` print it: the settings, and its state on each HSM.
type Link struct {
	Direction   string    `json:"direction"`
	ClusterID   string    `json:"cluster-id"`
	Address     string    `json:"address,omitempty"`
	Users       bool      `json:"users"`
	TrustAnchor string    `json:"trust-anchor"` // the anchor's subject
	HSMs        []LinkHSM `json:"hsms"`
}

// LinkHSM is one HSM's view of a link.
type LinkHSM struct {
	Address        string  `json:"address"`
	State          string  `json:"state"`
	Error          string  `json:"error,omitempty"`
	LagMS          float64 `json:"lag-ms"`
	RecordsBehind  int     `json:"records-behind"`
	LastSync       string  `json:"last-sync,omitempty"` // RFC 3339
	RecordsApplied uint64  `json:"records-replicated"`
}

// Links is the result of `cluster replication-link list`.
type Links struct {
	Links []Link `json:"replication-links"`
}

// Table prints one row per link and HSM.
func (l Links) Table() ([]string, [][]string) { return linkTable(l.Links) }

func linkTable(links []Link) ([]string, [][]string) {
	var rows [][]string
	for _, l := range links {
		for _, h := range l.HSMs {
			rows = append(rows, []string{l.Direction, l.ClusterID, h.Address, h.State, fmt.Sprintf("%.1fms", h.LagMS),
				fmt.Sprint(h.RecordsBehind), h.Error})
		}
	}
	return []string{"DIRECTION", "CLUSTER", "HSM", "STATE", "LAG", "RECORDS-BEHIND", "ERROR"}, rows
}

// mergeLinks gathers the HSMs' answers per link. An HSM that did not
// answer shows under every link as unreachable.
func mergeLinks(answers []client.HSMReplicationLinks) ([]Link, error) {
	byKey := map[string]*Link{}
	var keys []string
	var errs []string
	for _, a := range answers {
		if a.Err != nil {
			errs = append(errs, a.Err.Error())
			continue
		}
		for _, l := range a.Links {
			k := l.Direction + " " + l.ClusterID
			m := byKey[k]
			if m == nil {
				subject := "?"
				if c, err := x509.ParseCertificate(l.TrustAnchor); err == nil {
					subject = c.Subject.String()
				}
				m = &Link{Direction: l.Direction, ClusterID: l.ClusterID, Address: l.Address, Users: l.Users, TrustAnchor: subject}
				byKey[k] = m
				keys = append(keys, k)
			}
			h := LinkHSM{Address: a.Address, State: l.State, Error: l.Error, LagMS: float64(l.Lag) / float64(time.Millisecond),
				RecordsBehind: l.RecordsBehind, RecordsApplied: l.RecordsApplied}
			if !l.LastSync.IsZero() {
				h.LastSync = l.LastSync.UTC().Format(time.RFC3339)
			}
			m.HSMs = append(m.HSMs, h)
		}
	}
	if len(errs) == len(answers) && len(answers) > 0 {
		return nil, cli.Failf("no HSM answered: %s", strings.Join(errs, "; "))
	}
	slices.Sort(keys)
	out := []Link{}
	for _, k := range keys {
		m := byKey[k]
		for _, a := range answers {
			if a.Err != nil {
				m.HSMs = append(m.HSMs, LinkHSM{Address: a.Address, State: StateUnreachable, Error: a.Err.Error()})
			}
		}
		out = append(out, *m)
	}
	return out, nil
}

// linkLong is what every replication-link command's help says.
const linkLong = `

A replication link keeps the token keys (and, with --users on both sides, the
users) of a source cluster A replicated to a clone B: a cluster that holds
A's masking key, such as one restored from a backup of A. An admin of A
creates the outbound link (create), an admin of B the matching inbound one
(accept); each names the other cluster's id and the CA its HSM certificates
chain to (its customer CA). Every HSM of A then compares its keys with an
HSM of B every few seconds and pushes what B lacks or holds older, over
mutual TLS with its HSM certificate; keys made while B is unreachable
arrive when it is back. B admits only HSMs of A's cluster id whose
certificates chain to the anchor it named, only token keys (and users if it
chose them), never settings, and only keys whose owner and sharers are
crypto users on B; a cluster with another masking key is refused ("not a
clone"). A link is a cluster setting: admins only, and with
--approval when the quorum-management quorum value is above 1.`

func replicationLink(env *cli.Env) *cobra.Command {
	return cli.Group("replication-link", "Replication links between clones: keep keys of this cluster on another (admins)",
		createLink(env, "outbound"), createLink(env, "inbound"), deleteLink(env), listLinks(env))
}

func createLink(env *cli.Env, direction string) *cobra.Command {
	var clusterID, address, anchor, approval string
	var users bool
	cmd := &cobra.Command{}
	if direction == "outbound" {
		cmd.Use = "create"
		cmd.Short = "Replicate this cluster's keys to a clone (admins of the source)"
		cmd.Long = `Create the outbound link from this cluster to the clone --to-cluster-id,
whose HSM at --address replicates the keys on to its other HSMs. The clone's
admins must accept it (replication-link accept).` + linkLong
		cmd.Flags().StringVar(&clusterID, "to-cluster-id", "", "the clone's cluster id")
		cmd.Flags().StringVar(&address, "address", "", "host:port of an HSM of the clone")
		_ = cmd.MarkFlagRequired("to-cluster-id")
		_ = cmd.MarkFlagRequired("address")
	} else {
		cmd.Use = "accept"
		cmd.Short = "Accept the keys a source cluster replicates to this one (admins of the clone)"
		cmd.Long = `Create the inbound link from the source cluster --from-cluster-id: its HSMs
may then push keys to this cluster's HSMs.` + linkLong
		cmd.Flags().StringVar(&clusterID, "from-cluster-id", "", "the source cluster's id")
		_ = cmd.MarkFlagRequired("from-cluster-id")
	}
	cmd.Flags().StringVar(&anchor, "trust-anchor", "", "the CA certificate (PEM or DER) the other cluster's HSM certificates chain to")
	cmd.Flags().BoolVar(&users, "users", false, "replicate users too (both sides must say so)")
	cmd.Flags().StringVar(&approval, "approval", "", "quorum token file of service quorum, signed by the approvers, when the quorum-management value is above 1")
	_ = cmd.MarkFlagRequired("trust-anchor")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		der, err := readCertificate(anchor)
		if err != nil {
			return nil, err
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		l := client.ReplicationLink{Direction: direction, ClusterID: clusterID, Address: address, TrustAnchor: der, Users: users}
		if err := s.CreateReplicationLink(ctx, l, ap); err != nil {
			return nil, err
		}
		return fmt.Sprintf("Created the %s replication link with %s", direction, clusterID), nil
	})
	if direction == "outbound" {
		return cli.Leaf(cmd, `  coffer cli cluster replication-link create --to-cluster-id cluster-b --address 10.0.2.11:2223 --trust-anchor customerCA-b.crt
  coffer cli cluster replication-link create --to-cluster-id cluster-b --address 10.0.2.11:2223 --trust-anchor customerCA-b.crt --users`)
	}
	return cli.Leaf(cmd, `  coffer cli cluster replication-link accept --from-cluster-id cluster-a --trust-anchor customerCA-a.crt`)
}

func deleteLink(env *cli.Env) *cobra.Command {
	var direction, clusterID, approval string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a replication link (admins)",
		Long: `Delete the link of --direction (outbound or inbound) with --cluster-id. What
it replicated stays.` + linkLong,
	}
	cmd.Flags().StringVar(&direction, "direction", "", "outbound (this cluster replicates) or inbound (this cluster accepts)")
	cmd.Flags().StringVar(&clusterID, "cluster-id", "", "the other cluster")
	cmd.Flags().StringVar(&approval, "approval", "", "quorum token file of service quorum, signed by the approvers, when the quorum-management value is above 1")
	_ = cmd.MarkFlagRequired("direction")
	_ = cmd.MarkFlagRequired("cluster-id")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		if err := s.DeleteReplicationLink(ctx, direction, clusterID, ap); err != nil {
			return nil, err
		}
		return fmt.Sprintf("Deleted the %s replication link with %s", direction, clusterID), nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster replication-link delete --direction outbound --cluster-id cluster-b`)
}

func listLinks(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the replication links and their state on each HSM (no login needed)",
		Long: `List the links and, per HSM, the state of each: outbound in-sync, behind,
unreachable, not-a-clone or refused, with the lag (age of the oldest change
not known to be on the clone) and the records behind; inbound receiving or
waiting. No login needed.` + linkLong,
	}
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		c, err := env.Cluster(ctx)
		if err != nil {
			return nil, err
		}
		links, err := mergeLinks(c.ReplicationLinks(ctx))
		if err != nil {
			return nil, err
		}
		return Links{Links: links}, nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster replication-link list
  coffer cli --output table cluster replication-link list`)
}
