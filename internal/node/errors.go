package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
	"github.com/coffer-hsm/coffer/proto/hsmv1/reason"
)

// This file is the node's one error table: how device refusals, request
// validation and everything else become gRPC statuses.
//
// A refusal of the device (or of the node on the device's behalf) carries an
// ErrorInfo{Domain: reason.Domain, Reason: its stable name (the device
// Kind's, or the node's own from proto/hsmv1/reason), Metadata: {"rv": hex,
// ...}} and the refusal's text as the message. Transport-like outcomes (the
// caller gave up, the node is not ready) never carry one: that is how a
// client tells "the HSM said no" from "the HSM is not there".

// codeOf is the gRPC code for a PKCS#11 return value.
func codeOf(rv ck.RV) codes.Code {
	switch rv {
	case ck.CKR_SESSION_HANDLE_INVALID, ck.CKR_OBJECT_HANDLE_INVALID, ck.CKR_KEY_HANDLE_INVALID,
		ck.CKR_OPERATION_NOT_INITIALIZED:
		return codes.NotFound
	case ck.CKR_USER_NOT_LOGGED_IN, ck.CKR_PIN_INCORRECT, ck.CKR_PIN_LOCKED:
		return codes.Unauthenticated
	case ck.CKR_ACTION_PROHIBITED, ck.CKR_KEY_UNEXTRACTABLE, ck.CKR_KEY_FUNCTION_NOT_PERMITTED,
		ck.CKR_USER_TYPE_INVALID, ck.CKR_FUNCTION_REJECTED:
		return codes.PermissionDenied
	case ck.CKR_DEVICE_ERROR, ck.CKR_DEVICE_MEMORY:
		return codes.Internal
	}
	return codes.FailedPrecondition
}

// rvStatus is a refusal with its ErrorInfo (reason why, return value rv and
// the metadata meta, which it may change), under the given gRPC code.
func rvStatus(c codes.Code, rv ck.RV, why, msg string, meta map[string]string, more ...protoadapt.MessageV1) error {
	if meta == nil {
		meta = map[string]string{}
	}
	meta[reason.MetaRV] = fmt.Sprintf("0x%x", uint(rv))
	st := status.New(c, msg)
	withInfo, err := st.WithDetails(append([]protoadapt.MessageV1{&errdetails.ErrorInfo{
		Domain:   reason.Domain,
		Reason:   why,
		Metadata: meta,
	}}, more...)...)
	if err != nil { // cannot happen with a well-formed ErrorInfo
		return st.Err()
	}
	return withInfo.Err()
}

// refusal is a refusal the node makes itself, classed by the table; its
// reason is reason.Request, its return value says which.
func refusal(rv ck.RV, format string, args ...any) error {
	return rvStatus(codeOf(rv), rv, reason.Request, fmt.Sprintf(format, args...), nil)
}

// invalidArgument refuses a malformed request before the device sees it.
func invalidArgument(rv ck.RV, format string, args ...any) error {
	return rvStatus(codes.InvalidArgument, rv, reason.Request, fmt.Sprintf(format, args...), nil)
}

// deviceStatus turns an error of a device call into a status: a full disk
// under the store as CKR_DEVICE_MEMORY, a device refusal by the table, the caller's own cancellation or deadline as such,
// and anything else (a store failure, a bug) as Internal with
// CKR_DEVICE_ERROR.
func deviceStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // made by this package already
	}
	if errors.Is(err, store.ErrNoSpace) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// Before the device's own class (CKR_DEVICE_ERROR): the HSM is not
		// broken, its disk (the store's or the audit log's) is full. A store
		// write is then refused and rolled back; err says what happened.
		return rvStatus(codeOf(ck.CKR_DEVICE_MEMORY), ck.CKR_DEVICE_MEMORY, reason.DiskFull, fmt.Sprintf("the HSM's disk is full: %v", err), nil)
	}
	if k, ok := errors.AsType[*hsm.Kind](err); ok {
		var meta map[string]string
		if q, ok := errors.AsType[*hsm.ApprovalsShortError](err); ok {
			meta = map[string]string{reason.MetaApprovalsNeeded: strconv.Itoa(q.Needed), reason.MetaApprovalsGiven: strconv.Itoa(q.Given)}
		}
		return rvStatus(codeOf(k.RV), k.RV, k.Reason, err.Error(), meta)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return rvStatus(codes.Internal, ck.CKR_DEVICE_ERROR, reason.Internal, err.Error(), nil)
}

// errThrottled refuses a login the node will not run now (its client
// address has too many, or is paused after failures: logins.go): the
// device did not see it. It is RESOURCE_EXHAUSTED with CKR_FUNCTION_FAILED
// (PKCS#11 has no "try later"; not CKR_PIN_*, which would say something of
// the user) and a RetryInfo saying when to try again.
func errThrottled(retry time.Duration, format string, args ...any) error {
	return rvStatus(codes.ResourceExhausted, ck.CKR_FUNCTION_FAILED, reason.LoginThrottled, fmt.Sprintf(format, args...), nil,
		&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
}

// errNotReady answers client RPCs while the node has no device yet (it is
// still cloning the masking key or catching up with its peers).
func errNotReady() error {
	return status.Error(codes.Unavailable, "node is not ready: it is joining its cluster")
}

// errClientCertificate refuses an RPC on a connection without an accepted
// client certificate while the cluster enforces client mTLS. The refusal
// (CKR_DEVICE_ERROR, PERMISSION_DENIED: the HSM refuses this client, not
// its user, so a PKCS#11 C_Login does not answer CKR_PIN_INCORRECT) says
// how to fix it.
func errClientCertificate(err error) error {
	return rvStatus(codes.PermissionDenied, ck.CKR_DEVICE_ERROR, reason.ClientCertificateRequired, fmt.Sprintf(
		"client mTLS is enforced (level cluster): %v; configure the client with a certificate and key issued by a registered trust anchor "+
			"(coffer configure cli|pkcs11 --client-cert-hsm-tls-file CERT --client-key-hsm-tls-file KEY)", errors.Unwrap(err)), nil)
}

// peerStatus turns an error of the syncer or the store, met while serving a
// peer, into a status. Peer RPCs carry no ErrorInfo.
func peerStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, store.ErrBadBox):
		return status.Errorf(codes.FailedPrecondition, "records are sealed under another masking key: %v", err)
	case errors.Is(err, store.ErrMalformedRecord), errors.Is(err, peersync.ErrInvalidRequest):
		return status.Errorf(codes.InvalidArgument, "%v", err)
	case errors.Is(err, store.ErrNoMaskingKey):
		return status.Errorf(codes.Unavailable, "node has no masking key yet: %v", err)
	}
	return status.Errorf(codes.Internal, "%v", err)
}

// errPanic is what a caller sees when a handler panicked; the panic itself
// is logged.
func errPanic() error {
	return rvStatus(codes.Internal, ck.CKR_DEVICE_ERROR, reason.Internal, "internal error", nil)
}

// ErrNoFIPSModule: a node of a FIPS-mode cluster must run its cryptography
// in a FIPS 140-3 module, BoringCrypto's or Go's enforced
// (GODEBUG=fips140=only from process start; `coffer hsm run` starts itself
// again so); it does not start otherwise.
var ErrNoFIPSModule = errors.New("node: a FIPS-mode HSM needs a FIPS 140-3 module: run it on a GOEXPERIMENT=boringcrypto build, or with GODEBUG=fips140=only from its start")
