package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/proto/hsmv1/reason"
)

// Exit codes of `coffer cli`.
const (
	ExitOK     = 0
	ExitFailed = 1 // the operation was tried and failed
	ExitUsage  = 2 // the command line is wrong, or this cluster cannot do it
)

// ErrUnsupported marks a command this cluster cannot carry out yet.
var ErrUnsupported = errors.New("not supported by this cluster yet")

// Error is a failure of a command: the exit code it gives, and what the
// user can do about it.
type Error struct {
	Code int
	Err  error
	Hint string
}

func (e *Error) Error() string {
	if e.Hint == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + "; " + e.Hint
}

func (e *Error) Unwrap() error { return e.Err }

// Usagef is a mistake on the command line (exit code 2).
func Usagef(format string, args ...any) error {
	return &Error{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// Failf is a failure that is not an HSM's refusal (exit code 1).
func Failf(format string, args ...any) error {
	return &Error{Code: ExitFailed, Err: fmt.Errorf(format, args...)}
}

// Unsupported is a command this cluster cannot carry out yet (exit code 2).
func Unsupported(what, hint string) error {
	return &Error{Code: ExitUsage, Err: fmt.Errorf("%s: %w", what, ErrUnsupported), Hint: hint}
}

// Failed makes err a command failure with exit code 1, explained, unless it
// is an *Error already.
func Failed(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	msg, hint := explain(err)
	return &Error{Code: ExitFailed, Err: &explained{msg: msg, err: err}, Hint: hint}
}

// explained is an error shown with another message; errors.Is and As still
// see the original (client.Code works on it).
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// ExitStatus is an exit code whose reasons were printed already (the
// shell's).
type ExitStatus int

func (e ExitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Describe returns the message to show for err and the exit code it gives.
// Errors that are not *Error (cobra's own: an unknown flag or command) are
// usage errors.
func Describe(err error) (string, int) {
	var st ExitStatus
	if errors.As(err, &st) {
		return "", int(st)
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Error(), e.Code
	}
	return err.Error(), ExitUsage
}

// explain turns an error from the client into a message (an HSM's refusal
// as its return value and what it said) and a hint.
func explain(err error) (msg, hint string) {
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("%v: %s", ce.RV, ce.Msg), hintFor(ce)
	case errors.Is(err, client.ErrOutcomeUnknown):
		return err.Error(), "the HSM failed after it got the request: check (e.g. with `key list` or `user list`) whether it was done before trying again"
	case errors.Is(err, client.ErrNoHSM):
		return err.Error(), noHSMHint
	}
	return err.Error(), ""
}

const noHSMHint = "no HSM answered: check that the HSMs run and the addresses in the cluster configuration (`coffer configure cli -a ADDRESS --hsm-ca-cert FILE`)"

// hintFor says what the user can do about an HSM's refusal. It branches
// on the refusal's reason (proto/hsmv1/reason), never on its message.
func hintFor(e *client.Error) string {
	switch e.Reason {
	case reason.ClientCertificateRequired:
		return "" // the HSM says what to do
	case reason.PinIncorrect:
		return "check the username, password and role; after 5 failed logins in a row (the HSM's default) the user is locked until an admin runs `user unlock` (or `user change-password`)"
	case reason.PinLocked:
		return "an admin unlocks it by setting a new password: `user unlock --username NAME --role ROLE`; if every admin is locked, run `coffer hsm unlock-admin` on a stopped HSM's host"
	case reason.PinInvalid:
		return "a password has 7 to 32 characters"
	case reason.AdminCannotUseKeys:
		return "use `login --username NAME --role crypto-user` (or --role crypto-user on the command line)"
	case reason.NotLoggedIn:
		return "log in first: `login --username NAME --role ROLE`"
	case reason.AlreadyLoggedIn:
		return "run `logout` first"
	case reason.NotActivated:
		return "the cluster is not activated yet: run `cluster activate`, which logs in as the pre-admin (admin, password \"password\") and sets the admin's new password"
	case reason.UserTypeInvalid, reason.RoleNotPermitted:
		return "this role cannot do that: admins manage users and quorum, crypto users own and use keys"
	case reason.QuorumRequired, reason.QuorumTokenInvalid, reason.QuorumApprovalInvalid:
		return quorumHint(e)
	case reason.NotOwner, reason.NotShared:
		return "a crypto user a key is shared with may use it, but only its owner may delete, export, wrap, share or change it"
	case reason.ActionProhibited:
		return "the key's attributes forbid this: see them with `key list --filter ... --verbose`"
	case reason.KeyUnextractable:
		return "a key with attr.extractable=false never leaves the HSMs: it can be neither exported nor wrapped (and extractable cannot be set back to true)"
	case reason.KeyNotWrappable:
		return "the key has wrap-with-trusted=true: wrap it with a key whose trusted attribute is true"
	case reason.KeyFunctionDenied:
		return "the key's attributes do not allow this use: see them with `key list --filter ... --verbose`; its owner may change them with `key set-attribute`"
	case reason.KeyHandleInvalid, reason.ObjectHandleInvalid:
		return "no such key among those you can see: `key list` shows the keys you own or that are shared with you"
	case reason.KeyTypeInconsistent, reason.WrappingKeyInvalid, reason.UnwrappingKeyInvalid:
		return "the key's type does not fit this mechanism: check the key's key-type and class with `key list --verbose`"
	case reason.AttributeReadOnly:
		return "this attribute cannot be changed now (some change one way only: extractable true to false, sensitive false to true)"
	case reason.AttributeTypeInvalid, reason.AttributeValueInvalid, reason.TemplateInconsistent, reason.TemplateIncomplete:
		return "check the attributes given: docs/cli.md lists the attribute names, their values and which key types have them"
	case reason.SignatureInvalid, reason.SignatureLenRange:
		return "the signature does not match this data and key"
	case reason.ClientCertificate:
		return mtlsHowTo
	case reason.NoTrustAnchor:
		return "`cluster mtls register-trust-anchor --path CA.pem`"
	case reason.MTLSEnforced:
		return "`cluster mtls set-enforcement --level none`"
	case reason.TrustAnchorLimit:
		return "`cluster mtls list-trust-anchors` shows them; remove one with `cluster mtls deregister-trust-anchor --certificate-reference REF`"
	case reason.UserNotFound:
		return "`user list` shows the users"
	case reason.TrustAnchorNotFound:
		return "`cluster mtls list-trust-anchors` shows the trust anchors and their references"
	}
	return ""
}

// mtlsHowTo says how a client presents a certificate.
const mtlsHowTo = "configure this client with a certificate issued by a registered trust anchor " +
	"(`coffer configure cli -a ADDRESS --hsm-ca-cert FILE --client-cert-hsm-tls-file CERT --client-key-hsm-tls-file KEY`); " +
	"`cluster mtls list-trust-anchors` shows the registered ones"

func quorumHint(e *client.Error) string {
	const how = "get a token with `quorum token-sign generate --service user|quorum --token FILE`, have approvers sign it (`quorum token-sign approve --token FILE --username NAME --private-key KEY.pem`), then pass `--approval FILE`"
	switch e.Reason {
	case reason.QuorumTokenInvalid:
		return "the quorum token is expired, unknown or not yours: " + how
	case reason.QuorumApprovalInvalid:
		return "an approval does not verify: each approver must be an admin with a registered quorum key (`user list` shows them) and sign the token's data with it"
	}
	need, err1 := strconv.Atoi(e.Meta[reason.MetaApprovalsNeeded])
	have, err2 := strconv.Atoi(e.Meta[reason.MetaApprovalsGiven])
	if err1 == nil && err2 == nil && need > have {
		return fmt.Sprintf("this operation needs quorum approval: %d more approval(s) needed (%d of %d given); %s", need-have, have, need, how)
	}
	return "this operation needs quorum approval: " + how
}

// notLoggedIn says how to log in, in the shell or on the command line.
func notLoggedIn(interactive bool) error {
	if interactive {
		return &Error{Code: ExitFailed, Err: errors.New("not logged in"), Hint: "run `login --username NAME --role admin|crypto-user` first"}
	}
	return &Error{Code: ExitFailed, Err: errors.New("not logged in"),
		Hint: "pass --username NAME --role admin|crypto-user before the command (the password comes from --password, COFFER_CLI_PASSWORD or a prompt), or set COFFER_CLI_USERNAME and COFFER_CLI_ROLE"}
}
