package controlplane

import (
	"errors"
	"fmt"
	"net/http"
)

// Kinds of refusal. Operations return an *Error of one of these kinds (or
// wrap one); errors.Is compares kinds. wireError is the one place that turns
// them into AWS error shapes.
var (
	// The cloudhsmv2 model's errors.
	ErrInvalidRequest = errors.New("invalid request")
	ErrNotFound       = errors.New("resource not found")
	ErrAccessDenied   = errors.New("access denied")
	ErrService        = errors.New("service error")
	ErrInternal       = errors.New("internal failure")
	ErrTag            = errors.New("tag error")
	ErrLimitExceeded  = errors.New("resource limit exceeded")

	// Errors of the protocol and of authentication, common to AWS JSON
	// services.
	ErrUnknownOperation  = errors.New("unknown operation")
	ErrSerialization     = errors.New("malformed request body")
	ErrMissingAuth       = errors.New("missing authentication token")
	ErrIncompleteSig     = errors.New("incomplete signature")
	ErrInvalidSignature  = errors.New("invalid signature")
	ErrUnrecognizedKey   = errors.New("unrecognized access key")
	ErrMethodNotAllowed  = errors.New("method not allowed")
	ErrUnsupportedFormat = errors.New("unsupported content type")
	ErrTooLarge          = errors.New("request too large")
	ErrThrottled         = errors.New("throttled")
)

// wireErrors is the AWS error table: kind → __type and HTTP status.
var wireErrors = []struct {
	kind   error
	typ    string
	status int
}{
	{ErrInvalidRequest, "CloudHsmInvalidRequestException", http.StatusBadRequest},
	{ErrNotFound, "CloudHsmResourceNotFoundException", http.StatusBadRequest},
	{ErrAccessDenied, "CloudHsmAccessDeniedException", http.StatusBadRequest},
	{ErrService, "CloudHsmServiceException", http.StatusBadRequest},
	{ErrTag, "CloudHsmTagException", http.StatusBadRequest},
	{ErrLimitExceeded, "CloudHsmResourceLimitExceededException", http.StatusBadRequest},
	{ErrInternal, "CloudHsmInternalFailureException", http.StatusInternalServerError},
	{ErrUnknownOperation, "UnknownOperationException", http.StatusBadRequest},
	{ErrSerialization, "SerializationException", http.StatusBadRequest},
	{ErrMissingAuth, "MissingAuthenticationTokenException", http.StatusForbidden},
	{ErrIncompleteSig, "IncompleteSignatureException", http.StatusForbidden},
	{ErrInvalidSignature, "InvalidSignatureException", http.StatusForbidden},
	{ErrUnrecognizedKey, "UnrecognizedClientException", http.StatusForbidden},
	{ErrMethodNotAllowed, "UnknownOperationException", http.StatusMethodNotAllowed},
	{ErrUnsupportedFormat, "UnknownOperationException", http.StatusUnsupportedMediaType},
	{ErrTooLarge, "RequestEntityTooLargeException", http.StatusRequestEntityTooLarge},
	{ErrThrottled, "ThrottlingException", http.StatusBadRequest},
}

// Error is a refusal with the message the caller sees.
type Error struct {
	Kind    error  // one of the Err* kinds above
	Message string // what the AWS CLI prints after the error type
}

func (e *Error) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrNotFound) work.
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Error { return refuse(ErrInvalidRequest, format, args...) }

func notFound(format string, args ...any) *Error { return refuse(ErrNotFound, format, args...) }

// wireError maps any error to its AWS shape. Errors that are not an *Error
// are internal failures; their text is logged, not sent.
func wireError(err error) (status int, typ, message string, internal bool) {
	var e *Error
	if errors.As(err, &e) {
		for _, w := range wireErrors {
			if errors.Is(e.Kind, w.kind) {
				return w.status, w.typ, e.Message, false
			}
		}
	}
	return http.StatusInternalServerError, "CloudHsmInternalFailureException",
		"The request failed because of an internal error; see the control plane's log.", true
}
