package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// HSM states as `cluster info` reports them.
const (
	StateActive      = "ACTIVE"      // answers and has caught up with its peers
	StateCatchingUp  = "CATCHING_UP" // answers, still syncing before it serves
	StateUnreachable = "UNREACHABLE" // does not answer
)

// Info is the result of `cluster info`.
type Info struct {
	ClusterID string `json:"cluster-id"`
	HSMs      []HSM  `json:"hsms"`
	// Links are the cluster's replication links, with their state on
	// each HSM (omitted when there are none).
	Links []Link `json:"replication-links,omitempty"`
}

// HSM is one HSM of the cluster.
type HSM struct {
	Address        string `json:"address"`
	HSMID          string `json:"hsm-id,omitempty"`
	NodeID         uint32 `json:"node-id,omitempty"`
	State          string `json:"state"`
	Version        string `json:"version,omitempty"`
	Activated      bool   `json:"activated"`
	FIPS           bool   `json:"fips"`
	CryptoBackend  string `json:"crypto-backend,omitempty"` // go, boringcrypto, or go fips140 (MODULE)
	TokenObjects   int    `json:"token-objects"`
	SessionObjects int    `json:"session-objects"`
	Sessions       int    `json:"sessions"`
	Users          int    `json:"users"`
	Peers          []Peer `json:"peers"`
	Error          string `json:"error,omitempty"`
}

// Peer is an HSM's view of one of its peers.
type Peer struct {
	NodeID    uint32  `json:"node-id"`
	Address   string  `json:"address"`
	Connected bool    `json:"connected"`
	SyncLagMS float64 `json:"sync-lag-ms"` // how far the peer is behind this HSM
	// QueuedRecords are this HSM's changes the peer has not confirmed yet.
	QueuedRecords int `json:"queued-records"`
	// BehindRecords and BehindMS: how far this HSM is behind the peer (the
	// records the peer has still to deliver, and the age of the oldest).
	BehindRecords int     `json:"behind-records"`
	BehindMS      float64 `json:"behind-ms"`
}

// Table prints one HSM per row, with its largest sync lag (how far a peer
// is behind it) and how far it is behind its peers (records, age).
func (in Info) Table() ([]string, [][]string) {
	rows := make([][]string, len(in.HSMs))
	for i, h := range in.HSMs {
		lag, behind, behindRecs, peers := 0.0, 0.0, 0, 0
		for _, p := range h.Peers {
			lag = max(lag, p.SyncLagMS)
			behind = max(behind, p.BehindMS)
			behindRecs += p.BehindRecords
			if p.Connected {
				peers++
			}
		}
		rows[i] = []string{h.Address, h.HSMID, h.State, strconv.Itoa(h.TokenObjects), strconv.Itoa(h.Sessions),
			fmt.Sprintf("%d/%d", peers, len(h.Peers)), fmt.Sprintf("%.1fms", lag),
			fmt.Sprintf("%d (%.1fms)", behindRecs, behind)}
	}
	return []string{"ADDRESS", "HSM-ID", "STATE", "TOKEN-OBJECTS", "SESSIONS", "PEERS-CONNECTED", "MAX-SYNC-LAG", "BEHIND"}, rows
}

func info(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "info",
		Aliases: []string{"hsm-info"},
		Short:   "List the HSMs of the cluster: state, objects, peers and sync lag",
		Long: `Ask every HSM in the cluster configuration about itself: its state (ACTIVE,
CATCHING_UP while it syncs before serving, UNREACHABLE), its objects, sessions
and users, how far each of its peers is behind it (MAX-SYNC-LAG) and how far
it is behind its peers (BEHIND: records a peer has still to deliver, and the
age of the oldest), and the cluster's replication links with their state,
lag and records behind on each HSM (see replication-link list). No login
needed.`,
	}
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		c, err := env.Cluster(ctx)
		if err != nil {
			return nil, err
		}
		var out Info
		for _, st := range c.ClusterInfo(ctx) {
			h := HSM{Address: st.Address, State: StateUnreachable, Peers: []Peer{}}
			if st.Err != nil {
				h.Error = st.Err.Error()
			}
			if n := st.Info; n != nil {
				if out.ClusterID == "" {
					out.ClusterID = n.ClusterID
				}
				h.HSMID, h.NodeID, h.Version, h.FIPS, h.Activated = n.HSMID, n.NodeID, n.Version, n.FIPS, n.Activated
				h.CryptoBackend = n.CryptoBackend
				h.TokenObjects, h.SessionObjects, h.Sessions, h.Users = n.TokenObjects, n.SessionObjects, n.Sessions, n.Users
				h.State = StateCatchingUp
				if n.Ready {
					h.State = StateActive
				}
				for _, p := range n.Peers {
					h.Peers = append(h.Peers, Peer{NodeID: p.NodeID, Address: p.Address, Connected: p.Connected,
						SyncLagMS: float64(p.SyncLag) / float64(time.Millisecond), QueuedRecords: p.QueuedRecords,
						BehindRecords: p.BehindRecords, BehindMS: float64(p.Behind) / float64(time.Millisecond)})
				}
			}
			out.HSMs = append(out.HSMs, h)
		}
		if links, err := mergeLinks(c.ReplicationLinks(ctx)); err == nil && len(links) > 0 {
			out.Links = links
		}
		return out, nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster info
  coffer cli --output table cluster info`)
}
