package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
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
		return fmt.Sprintf("%v: %s", ce.RV, ce.Msg), hintFor(ce.RV, ce.Msg)
	case errors.Is(err, client.ErrOutcomeUnknown):
		return err.Error(), "the HSM failed after it got the request: check (e.g. with `key list` or `user list`) whether it was done before trying again"
	case errors.Is(err, client.ErrNoHSM):
		return err.Error(), noHSMHint
	}
	return err.Error(), ""
}

const noHSMHint = "no HSM answered: check that the HSMs run and the addresses in the cluster configuration (`coffer configure cli -a ADDRESS --hsm-ca-cert FILE`)"

var quorumCount = regexp.MustCompile(`needs (\d+) approvals, has (\d+)`)

func hintFor(rv ck.RV, msg string) string {
	if strings.Contains(msg, "client mTLS is enforced") {
		return "" // the HSM says what to do
	}
	switch rv {
	case ck.CKR_PIN_INCORRECT:
		return "check the username, password and role; after 5 failed logins in a row (the HSM's default) the user is locked until an admin runs `user unlock` (or `user change-password`)"
	case ck.CKR_PIN_LOCKED:
		return "an admin unlocks it by setting a new password: `user unlock --username NAME --role ROLE`; if every admin is locked, run `coffer hsm unlock-admin` on a stopped HSM's host"
	case ck.CKR_PIN_LEN_RANGE:
		return "a password has 7 to 32 characters"
	case ck.CKR_USER_NOT_LOGGED_IN:
		if strings.Contains(msg, "admins") {
			return "use `login --username NAME --role crypto-user` (or --role crypto-user on the command line)"
		}
		return "log in first: `login --username NAME --role ROLE`"
	case ck.CKR_USER_ALREADY_LOGGED_IN:
		return "run `logout` first"
	case ck.CKR_USER_PIN_NOT_INITIALIZED:
		return "the cluster is not activated yet: run `cluster activate`, which logs in as the pre-admin (admin, password \"password\") and sets the admin's new password"
	case ck.CKR_USER_TYPE_INVALID:
		return "this role cannot do that: admins manage users and quorum, crypto users own and use keys"
	case ck.CKR_FUNCTION_REJECTED:
		return quorumHint(msg)
	case ck.CKR_ACTION_PROHIBITED:
		if strings.Contains(msg, "owner") || strings.Contains(msg, "shared") {
			return "a crypto user a key is shared with may use it, but only its owner may delete, export, wrap, share or change it"
		}
		return "the key's attributes forbid this: see them with `key list --filter ... --verbose`"
	case ck.CKR_KEY_UNEXTRACTABLE:
		return "a key with attr.extractable=false never leaves the HSMs: it can be neither exported nor wrapped (and extractable cannot be set back to true)"
	case ck.CKR_KEY_NOT_WRAPPABLE:
		return "the key has wrap-with-trusted=true: wrap it with a key whose trusted attribute is true"
	case ck.CKR_KEY_FUNCTION_NOT_PERMITTED:
		return "the key's attributes do not allow this use: see them with `key list --filter ... --verbose`; its owner may change them with `key set-attribute`"
	case ck.CKR_KEY_HANDLE_INVALID, ck.CKR_OBJECT_HANDLE_INVALID:
		return "no such key among those you can see: `key list` shows the keys you own or that are shared with you"
	case ck.CKR_KEY_TYPE_INCONSISTENT, ck.CKR_WRAPPING_KEY_TYPE_INCONSISTENT, ck.CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT:
		return "the key's type does not fit this mechanism: check the key's key-type and class with `key list --verbose`"
	case ck.CKR_ATTRIBUTE_READ_ONLY:
		return "this attribute cannot be changed now (some change one way only: extractable true to false, sensitive false to true)"
	case ck.CKR_ATTRIBUTE_TYPE_INVALID, ck.CKR_ATTRIBUTE_VALUE_INVALID, ck.CKR_TEMPLATE_INCONSISTENT, ck.CKR_TEMPLATE_INCOMPLETE:
		return "check the attributes given: docs/cli.md lists the attribute names, their values and which key types have them"
	case ck.CKR_SIGNATURE_INVALID, ck.CKR_SIGNATURE_LEN_RANGE:
		return "the signature does not match this data and key"
	case ck.CKR_FUNCTION_FAILED:
		return mtlsHint(msg)
	case ck.CKR_ARGUMENTS_BAD:
		if strings.Contains(msg, "no such user") {
			return "`user list` shows the users"
		}
		if strings.Contains(msg, "no trust anchor with that reference") {
			return "`cluster mtls list-trust-anchors` shows the trust anchors and their references"
		}
	case ck.CKR_DEVICE_ERROR:
		if strings.Contains(msg, "no HSM") {
			return noHSMHint
		}
	}
	return ""
}

// mtlsHowTo says how a client presents a certificate.
const mtlsHowTo = "configure this client with a certificate issued by a registered trust anchor " +
	"(`coffer configure cli -a ADDRESS --hsm-ca-cert FILE --client-cert-hsm-tls-file CERT --client-key-hsm-tls-file KEY`); " +
	"`cluster mtls list-trust-anchors` shows the registered ones"

// mtlsHint explains the client mTLS refusals (CKR_FUNCTION_FAILED).
func mtlsHint(msg string) string {
	switch {
	case strings.Contains(msg, "client certificate not accepted"):
		return mtlsHowTo
	case strings.Contains(msg, "no trust anchor is registered"):
		return "`cluster mtls register-trust-anchor --path CA.pem`"
	case strings.Contains(msg, "mTLS enforcement is cluster"):
		return "`cluster mtls set-enforcement --level none`"
	case strings.Contains(msg, "at most 2 trust anchors"):
		return "`cluster mtls list-trust-anchors` shows them; remove one with `cluster mtls deregister-trust-anchor --certificate-reference REF`"
	}
	return ""
}

func quorumHint(msg string) string {
	const how = "get a token with `quorum token-sign generate --service user|quorum --token FILE`, have approvers sign it (`quorum token-sign approve --token FILE --username NAME --private-key KEY.pem`), then pass `--approval FILE`"
	switch {
	case strings.Contains(msg, "expired or unknown"), strings.Contains(msg, "no token"), strings.Contains(msg, "issued to another"):
		return "the quorum token is expired, unknown or not yours: " + how
	case strings.Contains(msg, "approval is invalid"), strings.Contains(msg, "approval from"):
		return "an approval does not verify: each approver must be an admin with a registered quorum key (`user list` shows them) and sign the token's data with it"
	}
	if m := quorumCount.FindStringSubmatch(msg); m != nil {
		need, _ := strconv.Atoi(m[1])
		have, _ := strconv.Atoi(m[2])
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
