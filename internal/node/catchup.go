package node

import (
	"context"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
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
// anti-entropy run with a peer whose queue cannot tell: only a caller that
// has passed a password check may cause one. The interceptor catches up
// for calls in a logged-in session only (a call with no session, or in an
// anonymous one, answers from what this HSM holds); a login catches up
// inside its address's pacing, once admitted, just before the password is
// checked (rpc_users.go: Login).

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
	// bindSession has checked that the connection owns the session.
	if r, ok := req.(sessionRequest); !ok || r.GetSession() == 0 || !n.sessions.loggedIn(r.GetSession()) {
		return handler(ctx, req)
	}
	if catchUpBefore[method] {
		n.catchUp(ctx, method)
		return handler(ctx, req)
	}
	resp, err := handler(ctx, req)
	if rv, ok := refusalRV(err); ok && missingObject[rv] {
		if n.catchUp(ctx, method) {
			return handler(ctx, req)
		}
	}
	return resp, err
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
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain {
			v, err := strconv.ParseUint(strings.TrimPrefix(info.GetMetadata()["rv"], "0x"), 16, 64)
			if err != nil {
				return 0, false
			}
			return ck.RV(v), true
		}
	}
	return 0, false
}
