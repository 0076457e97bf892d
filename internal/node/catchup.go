package node

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1/reason"
)

// This file: an HSM that is behind a reachable peer never answers as if it
// were complete. Before an answer that depends on the whole set of objects,
// users or settings, and again when a call names an object this HSM does
// not hold, the node catches up with its peers first (peersync.CatchUp:
// each reachable peer pushes what it queued for this node, or anti-entropy
// runs when its queue cannot tell). Catch-ups of concurrent calls are
// shared; a peer that does not answer (down, frozen, cut off) is not waited
// for.

// A catch-up costs this node a round trip to every peer, and an
// anti-entropy run with a peer whose queue cannot tell, so who may cause
// one, how often, is bounded. A call in a logged-in session catches up at
// once. A login catches up inside its address's pacing, once admitted,
// just before the password is checked (rpc_users.go: Login). Any other
// call ("a stranger's": no session, or one not logged in) waits for the
// next stranger slot (strangerGate) and then catches up: its answer is as
// fresh, but all strangers together, from however many addresses, start
// at most a couple of runs per strangerInterval.

// catchUpBefore are the HSM methods whose answer depends on what the HSM
// holds as a whole (a search, the user list, settings), or that change
// users or settings: in a logged-in session they run after a catch-up.
var catchUpBefore = map[string]bool{
	"FindObjects": true,
	"Activate":    true, "CreateUser": true, "DeleteUser": true, "ChangePassword": true,
	"ListUsers": true, "ShareKey": true, "UnshareKey": true,
	"RegisterQuorumKey": true, "SetQuorumValue": true, "QuorumValues": true,
	"RegisterTrustAnchor": true, "ListTrustAnchors": true, "DeregisterTrustAnchor": true,
	"SetMTLSEnforcement": true, "GetMTLSEnforcement": true,
}

// missingObject are the refusals that mean "this HSM holds no such object";
// a call refused so runs again once after a catch-up.
var missingObject = map[ck.RV]bool{
	ck.CKR_OBJECT_HANDLE_INVALID:         true,
	ck.CKR_KEY_HANDLE_INVALID:            true,
	ck.CKR_WRAPPING_KEY_HANDLE_INVALID:   true,
	ck.CKR_UNWRAPPING_KEY_HANDLE_INVALID: true,
}

// catchUpFirst is the unary interceptor of the rule above (HSM service
// only; peer calls never wait for a catch-up).
func (n *Node) catchUpFirst(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method, ok := strings.CutPrefix(info.FullMethod, hsmMethodPrefix)
	if !ok || len(n.peers) == 0 {
		return handler(ctx, req)
	}
	catchUp := func() bool {
		// bindSession has checked that the connection owns the session.
		r, ok := req.(sessionRequest)
		stranger := !ok || r.GetSession() == 0 || !n.sessions.loggedIn(r.GetSession())
		if stranger && !n.strangers.wait(ctx) {
			return false
		}
		return n.catchUp(ctx, method)
	}
	if catchUpBefore[method] {
		catchUp()
		return handler(ctx, req)
	}
	resp, err := handler(ctx, req)
	if rv, ok := refusalRV(err); ok && missingObject[rv] {
		if catchUp() {
			return handler(ctx, req)
		}
	}
	return resp, err
}

// strangerInterval is the spacing of stranger slots: a stranger's call
// waits at most this long before its catch-up.
const strangerInterval = 100 * time.Millisecond

// strangerGate spaces the catch-ups of strangers' calls: a call waits for
// the next slot, at least strangerInterval after the previous one, and
// every call waiting for one slot shares its catch-up runs (peersync
// shares concurrent CatchUp calls).
type strangerGate struct {
	mu   sync.Mutex
	slot time.Time // the latest slot handed out
}

// wait blocks until the caller's slot, or reports false if ctx ends first.
func (g *strangerGate) wait(ctx context.Context) bool {
	now := time.Now()
	g.mu.Lock()
	switch next := g.slot.Add(strangerInterval); {
	case !now.Before(next):
		g.slot = now
	case now.After(g.slot):
		g.slot = next
	}
	at := g.slot
	g.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// catchUp runs (or joins) a catch-up with the peers; it reports whether one
// ran at all. What failed (an unreachable peer) is logged: the call then
// answers from what this HSM holds.
func (n *Node) catchUp(ctx context.Context, method string) bool {
	s := n.syncer.Load()
	if s == nil || len(n.peers) == 0 {
		return false
	}
	if err := s.CatchUp(ctx); err != nil {
		n.log.Debug("answering without a full catch-up", "method", method, "err", err)
	}
	return true
}

// refusalRV is the PKCS#11 return value of a device refusal (see
// errors.go), false for any other error.
func refusalRV(err error) (ck.RV, bool) {
	if err == nil {
		return 0, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == reason.Domain {
			v, err := strconv.ParseUint(strings.TrimPrefix(info.GetMetadata()[reason.MetaRV], "0x"), 16, 64)
			if err != nil {
				return 0, false
			}
			return ck.RV(v), true
		}
	}
	return 0, false
}
