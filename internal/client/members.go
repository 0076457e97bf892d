package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// ErrBadMembership means an HSM described a membership that cannot be
// used: an address that is not host:port, or more HSMs than a client
// routes to.
var ErrBadMembership = errors.New("unusable cluster membership")

// Members asks the HSMs of cfg, one after another until one answers, for
// the cluster's current HSMs: the one that answered and the peers it
// lists in its NodeInfo. Each HSM is reached through cfg.TLS, so only an
// HSM whose certificate verifies as one of the cluster's, at the address
// dialled, is believed; an address it lists is dialled later under the
// same rule, so a wrong one is unusable, never trusted. `coffer configure
// -m` writes the result into the configuration file; a running Cluster
// refreshes its members the same way.
func Members(ctx context.Context, cfg Config) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var errs []error
	for _, addr := range cfg.HSMs {
		got, err := askMembers(ctx, cfg, addr)
		if err == nil {
			return got, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("client: cluster membership: %w: %w", ErrNoHSM, errors.Join(errs...))
}

func askMembers(ctx context.Context, cfg Config, addr string) ([]string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("HSM %s: %w", addr, err)
	}
	tlsCfg, err := cfg.TLS(host)
	if err != nil {
		return nil, fmt.Errorf("HSM %s: TLS: %w", addr, err)
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, fmt.Errorf("HSM %s: %w", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	info, err := hsmv1.NewHSMClient(conn).NodeInfo(ctx, &hsmv1.Empty{})
	if err != nil {
		if r := refusal(addr, err); r != nil {
			err = r
		}
		return nil, fmt.Errorf("HSM %s: node info: %w", addr, err)
	}
	return membersOf(addr, info)
}

// membersOf is the membership an HSM reached at self describes: itself,
// then its peers in node id order.
func membersOf(self string, info *hsmv1.NodeInfoResponse) ([]string, error) {
	out := []string{self}
	for _, p := range info.GetPeers() {
		a := p.GetAddress()
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("HSM %s lists peer %d at %q: %w", self, p.GetNodeId(), a, ErrBadMembership)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) > maxHSMs {
		return nil, fmt.Errorf("HSM %s lists %d HSMs, at most %d: %w", self, len(out), maxHSMs, ErrBadMembership)
	}
	return out, nil
}
