package client

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

func liveAddrs(c *Cluster) []string {
	var out []string
	for _, m := range c.live() {
		out = append(out, m.addr)
	}
	return out
}

// A running client learns of an HSM that joined from the HSMs it is
// connected to, logs in there and uses it, and stops using one that left:
// an application need not restart (seed 001).
func TestMembershipFollowsCluster(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	cfg := testConfig(w, pki)
	cfg.MembershipInterval = 20 * time.Millisecond
	c := dial(t, cfg)
	s := login(t, c)
	ctx := t.Context()

	f3 := w.join(t, pki.server)
	eventually(t, "the client to use the HSM that joined", func() bool {
		ms := c.live()
		return len(ms) == 3 && ms[2].addr == f3.address() && ms[2].up.Load() && ms[2].nodeID.Load() == 3
	})
	undo := steer(c, 2)
	if _, err := s.GenerateRandom(ctx, 16); err != nil {
		t.Fatalf("GenerateRandom on the new HSM: %v", err)
	}
	undo()
	if f3.count("GenerateRandom") != 1 || f3.logins.Load() != 1 {
		t.Fatalf("new HSM: %d GenerateRandom, %d logins; want 1, 1", f3.count("GenerateRandom"), f3.logins.Load())
	}
	if st := c.ClusterInfo(ctx); len(st) != 3 || st[2].Info == nil || st[2].Info.NodeID != 3 {
		t.Fatalf("ClusterInfo: %+v", st)
	}

	// HSM 2 leaves the cluster (delete-hsm): dropped, never dialled again.
	gone := c.live()[1]
	w.leave(w.servers[1])
	eventually(t, "the client to drop the HSM that left", func() bool {
		return slices.Equal(liveAddrs(c), []string{w.servers[0].address(), f3.address()})
	})
	if !gone.removed.Load() || gone.up.Load() || c.all.Load()&gone.bit() != 0 {
		t.Fatalf("removed member: removed %v up %v in routing %v", gone.removed.Load(), gone.up.Load(), c.all.Load()&gone.bit() != 0)
	}
	if st := gone.conn.GetState(); st != connectivity.Shutdown {
		t.Fatalf("removed member's connection is %v, want Shutdown", st)
	}
	probes := gone.probes.Load()
	for range 20 {
		if _, err := s.GenerateRandom(ctx, 16); err != nil {
			t.Fatalf("GenerateRandom after the HSM left: %v", err)
		}
	}
	time.Sleep(5 * cfg.ReconnectInterval)
	if gone.probes.Load() != probes {
		t.Fatal("the HSM that left is still probed")
	}
	if st := c.ClusterInfo(ctx); len(st) != 2 {
		t.Fatalf("ClusterInfo after the HSM left: %+v", st)
	}
	// A member that is up is kept even if one HSM's list lacks it (a
	// rolling restart); and an HSM that is merely down is kept while it is
	// listed, to come back.
	w.servers[0].stop()
	time.Sleep(10 * cfg.MembershipInterval)
	if got := liveAddrs(c); len(got) != 2 {
		t.Fatalf("a listed HSM that is down was dropped: %v", got)
	}
	w.servers[0].start(t)
	eventually(t, "HSM 1 back", func() bool { return c.live()[0].up.Load() })
}

// An address an HSM lists is only where to look: a server there that is
// not one of the cluster's HSMs (its certificate does not verify) is never
// up and never sent a request; and a membership from anything but an HSM
// the client verified is never applied.
func TestMembershipTrustsOnlyClusterHSMs(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	cfg := testConfig(w, pki)
	cfg.MembershipInterval = 20 * time.Millisecond
	c := dial(t, cfg)
	s := login(t, c)

	other := newTestPKI(t)
	impostor := w.join(t, other.server)
	eventually(t, "the listed address to be tried", func() bool {
		ms := c.live()
		return len(ms) == 3 && ms[2].probes.Load() >= 2
	})
	if c.live()[2].up.Load() {
		t.Fatal("a server whose certificate does not verify is up")
	}
	for range 20 {
		if _, err := s.GenerateRandom(t.Context(), 16); err != nil {
			t.Fatal(err)
		}
	}
	if n := impostor.count("NodeInfo") + impostor.count("GenerateRandom") + int(impostor.logins.Load()); n != 0 {
		t.Fatalf("the impostor got %d requests", n)
	}

	// Members asks verified HSMs only: with the impostor alone, nothing.
	alone := cfg
	alone.HSMs = []string{impostor.address()}
	if got, err := Members(t.Context(), alone); !errors.Is(err, ErrNoHSM) {
		t.Fatalf("Members from an unverified server: %v, %v", got, err)
	}
	got, err := Members(t.Context(), cfg)
	if err != nil || !slices.Equal(got, []string{w.servers[0].address(), w.servers[1].address(), impostor.address()}) {
		t.Fatalf("Members: %v, %v", got, err)
	}
}

func TestMembersOfRefusesBadAddresses(t *testing.T) {
	for _, peers := range [][]*hsmv1.PeerStatus{
		{{NodeId: 2, Address: "not an address"}},
		{{NodeId: 2, Address: ""}},
	} {
		if _, err := membersOf("127.0.0.1:2223", &hsmv1.NodeInfoResponse{NodeId: 1, Peers: peers}); !errors.Is(err, ErrBadMembership) {
			t.Errorf("membersOf(%v) = %v, want ErrBadMembership", peers, err)
		}
	}
	many := &hsmv1.NodeInfoResponse{NodeId: 1}
	for i := range maxHSMs {
		many.Peers = append(many.Peers, &hsmv1.PeerStatus{NodeId: uint32(i + 2), Address: fmt.Sprintf("127.0.0.2:%d", 3000+i)})
	}
	if _, err := membersOf("127.0.0.1:2223", many); !errors.Is(err, ErrBadMembership) {
		t.Errorf("membersOf with %d HSMs = %v, want ErrBadMembership", maxHSMs+1, err)
	}
	many.Peers = many.Peers[:maxHSMs-1]
	if got, err := membersOf("127.0.0.1:2223", many); err != nil || len(got) != maxHSMs {
		t.Errorf("membersOf with %d HSMs = %d, %v", maxHSMs, len(got), err)
	}
}

// A configuration file turns the refresh on by default, and can turn it
// off or set its interval.
func TestFileMembershipRefresh(t *testing.T) {
	anchor, _ := clusterPKI(t, "cluster-test")
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{{"", DefaultMembershipRefresh, false}, {"off", 0, false}, {"5s", 5 * time.Second, false}, {"0s", 0, true}, {"soon", 0, true}} {
		f := File{HSMs: []string{"127.0.0.1:2223"}, HSMCACert: anchor, ClusterID: "cluster-test", MembershipRefresh: tc.in}
		cfg, err := f.Config(nil)
		switch {
		case tc.bad && err == nil:
			t.Errorf("membership_refresh %q accepted", tc.in)
		case !tc.bad && (err != nil || cfg.MembershipInterval != tc.want):
			t.Errorf("membership_refresh %q: %v, %v; want %v", tc.in, cfg.MembershipInterval, err, tc.want)
		}
	}
}

// "batching" is on by default, "off" sends RPCs, anything else is refused.
func TestFileBatching(t *testing.T) {
	anchor, _ := clusterPKI(t, "cluster-test")
	for _, tc := range []struct {
		in        string
		unbatched bool
		bad       bool
	}{{"", false, false}, {"on", false, false}, {"off", true, false}, {"no", false, true}} {
		f := File{HSMs: []string{"127.0.0.1:2223"}, HSMCACert: anchor, ClusterID: "cluster-test", Batching: tc.in}
		cfg, err := f.Config(nil)
		switch {
		case tc.bad && err == nil:
			t.Errorf("batching %q accepted", tc.in)
		case !tc.bad && (err != nil || cfg.Unbatched != tc.unbatched):
			t.Errorf("batching %q: unbatched %v, %v; want %v", tc.in, cfg.Unbatched, err, tc.unbatched)
		}
	}
}
