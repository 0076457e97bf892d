package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1/reason"
)

var (
	// ErrClosed is returned by a Cluster or Session after Close.
	ErrClosed = errors.New("client: closed")
	// ErrNoHSM means no HSM of the cluster could take the request.
	ErrNoHSM = errors.New("client: no HSM available")
	// ErrOutcomeUnknown means a request that changes state reached an HSM
	// that then failed: it may or may not have been done there. The error is
	// an *UnknownOutcomeError naming the HSM.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrOperationLost means a multi-part operation's HSM failed (or was
	// reconnected) before the step was sent: the operation is gone.
	ErrOperationLost = errors.New("client: multi-part operation lost with its HSM")
)

// Error is a refusal by an HSM: its PKCS#11 return value, its reason (a
// stable name from proto/hsmv1/reason to branch on; the message is for
// people) and message. errors.Is(err, &Error{RV: ck.CKR_PIN_INCORRECT})
// matches any refusal with that return value.
type Error struct {
	RV     ck.RV
	Reason string            // e.g. reason.UserExists; "" from a client-side refusal
	Meta   map[string]string // the reason's metadata, e.g. reason.MetaApprovalsNeeded
	Msg    string
	HSM    string // address of the HSM that refused
}

func (e *Error) Error() string {
	if e.HSM == "" {
		return fmt.Sprintf("%v: %s", e.RV, e.Msg)
	}
	return fmt.Sprintf("HSM %s: %v: %s", e.HSM, e.RV, e.Msg)
}

// Is matches a target *Error with the same return value.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.RV == e.RV
}

// UnknownOutcomeError is a request that changes state and reached HSM but got
// no answer: the caller must find out (e.g. with FindObjects) whether it was
// done. errors.Is(err, ErrOutcomeUnknown) holds.
type UnknownOutcomeError struct {
	Op  string // e.g. "generate key"
	HSM string // address
	Err error  // the transport failure or the caller's context error
}

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("client: %s on HSM %s: outcome unknown (the HSM may or may not have done it): %v", e.Op, e.HSM, e.Err)
}

func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrOutcomeUnknown) true.
func (e *UnknownOutcomeError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Code is the PKCS#11 return value for err: CKR_OK for nil, the RV of an HSM's
// refusal, CKR_FUNCTION_CANCELED for a cancelled or expired context,
// CKR_OPERATION_NOT_INITIALIZED for a lost multi-part operation,
// CKR_DEVICE_ERROR when no HSM answered or the outcome is unknown, and
// CKR_GENERAL_ERROR otherwise.
func Code(err error) ck.RV {
	var e *Error
	switch {
	case err == nil:
		return ck.CKR_OK
	case errors.As(err, &e):
		return e.RV
	case errors.Is(err, ErrOperationLost):
		return ck.CKR_OPERATION_NOT_INITIALIZED
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrNoHSM):
		return ck.CKR_DEVICE_ERROR
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ck.CKR_FUNCTION_CANCELED
	}
	return ck.CKR_GENERAL_ERROR
}

// refusal returns the HSM's refusal in err, or nil when err is a transport
// failure. This is the one place where wire errors become client errors.
func refusal(addr string, err error) *Error {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != reason.Domain {
			continue
		}
		rv := ck.CKR_DEVICE_ERROR // a refusal whose code we cannot read
		if v, err := strconv.ParseUint(info.GetMetadata()[reason.MetaRV], 0, 64); err == nil {
			rv = ck.RV(v)
		}
		return &Error{RV: rv, Reason: info.GetReason(), Meta: info.GetMetadata(), Msg: st.Message(), HSM: addr}
	}
	if st.Code() == codes.Unimplemented {
		// An HSM of another version: it is there, it just cannot do this.
		return &Error{RV: ck.CKR_FUNCTION_NOT_SUPPORTED, Msg: st.Message(), HSM: addr}
	}
	return nil
}
