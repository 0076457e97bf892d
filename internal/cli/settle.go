package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

// Settling bounds: how long a command waits for its change to reach every
// HSM, and how often it looks.
const (
	SettleTimeout = 10 * time.Second
	settlePoll    = 20 * time.Millisecond
)

// Settle waits until every HSM that answers has passed its changes on to
// every peer it is connected to (each reports a sync lag of 0), so that the
// next command, on whichever HSM, sees a change just made: a new user, a
// new password, a new key. CloudHSM asks administrators to make user
// changes on every HSM; Coffer's HSMs replicate them, and the CLI waits for
// that. If the cluster does not settle in time, Settle warns on Err and
// returns: the change was made, it is only not everywhere yet.
func (e *Env) Settle(ctx context.Context) {
	if c := e.conns[e.current]; c != nil {
		e.settle(ctx, c.cluster)
	}
}

// SettleCluster is Settle on the configured cluster id.
func (e *Env) SettleCluster(ctx context.Context, id string) {
	if c := e.conns[id]; c != nil {
		e.settle(ctx, c.cluster)
	}
}

func (e *Env) settle(ctx context.Context, cl *client.Cluster) {
	ctx, cancel := context.WithTimeout(ctx, SettleTimeout)
	defer cancel()
	tick := time.NewTicker(settlePoll)
	defer tick.Stop()
	for {
		lagging := lagging(ctx, cl)
		if len(lagging) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(e.Err, "warning: the change has not reached every HSM yet (%s); they will catch up, until then some may not see it\n",
				strings.Join(lagging, "; "))
			return
		case <-tick.C:
		}
	}
}

// lagging lists the HSMs that have changes a connected peer has not
// acknowledged.
func lagging(ctx context.Context, cl *client.Cluster) []string {
	var out []string
	for _, st := range cl.ClusterInfo(ctx) {
		if st.Info == nil {
			continue // down: it catches up before it serves again
		}
		for _, p := range st.Info.Peers {
			if p.Connected && p.SyncLag > 0 {
				out = append(out, fmt.Sprintf("HSM %s is %v ahead of %s", st.Address, p.SyncLag.Round(time.Millisecond), p.Address))
			}
		}
	}
	return out
}
