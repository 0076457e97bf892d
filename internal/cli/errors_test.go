package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/proto/hsmv1/reason"
)

func TestDescribe(t *testing.T) {
	refusal := func(rv ck.RV, why, msg string) error {
		return fmt.Errorf("op: %w", &client.Error{RV: rv, Reason: why, Msg: msg, HSM: "127.0.0.11:2223"})
	}
	for _, c := range []struct {
		name string
		err  error
		code int
		want []string // parts of the message, in order
	}{
		{"wrong password", Failed(refusal(ck.CKR_PIN_INCORRECT, reason.PinIncorrect, "login: incorrect username or password")), ExitFailed,
			[]string{"CKR_PIN_INCORRECT: login: incorrect username or password; ", "after 5 failed logins", "`user unlock`"}},
		{"locked", Failed(refusal(ck.CKR_PIN_LOCKED, reason.PinLocked, "login: user is locked")), ExitFailed,
			[]string{"CKR_PIN_LOCKED", "`user unlock --username NAME --role ROLE`"}},
		{"admin uses a key", Failed(refusal(ck.CKR_USER_NOT_LOGGED_IN, reason.AdminCannotUseKeys, "key.sign: admins manage users but cannot use keys")), ExitFailed,
			[]string{"CKR_USER_NOT_LOGGED_IN: key.sign: admins", "--role crypto-user"}},
		{"not logged in", Failed(refusal(ck.CKR_USER_NOT_LOGGED_IN, reason.NotLoggedIn, "user.list: not logged in")), ExitFailed,
			[]string{"log in first"}},
		{"not activated", Failed(refusal(ck.CKR_USER_PIN_NOT_INITIALIZED, reason.NotActivated, "cluster is not activated")), ExitFailed,
			[]string{"`cluster activate`"}},
		{"shared key", Failed(refusal(ck.CKR_ACTION_PROHIBITED, reason.NotOwner, "key.export: only the key's owner may do this")), ExitFailed,
			[]string{"only its owner may delete, export, wrap, share or change it"}},
		{"attributes forbid", Failed(refusal(ck.CKR_ACTION_PROHIBITED, reason.ActionProhibited, "object's attributes forbid this")), ExitFailed,
			[]string{"the key's attributes forbid this"}},
		{"unextractable", Failed(refusal(ck.CKR_KEY_UNEXTRACTABLE, reason.KeyUnextractable, "key.export: key is not extractable")), ExitFailed,
			[]string{"attr.extractable=false never leaves the HSMs"}},
		{"quorum count", Failed(fmt.Errorf("op: %w", &client.Error{RV: ck.CKR_FUNCTION_REJECTED, Reason: reason.QuorumRequired,
			Meta: map[string]string{reason.MetaApprovalsNeeded: "3", reason.MetaApprovalsGiven: "1"}, Msg: "user.delete: operation needs quorum approvals"})), ExitFailed,
			[]string{"2 more approval(s) needed (1 of 3 given)", "--approval FILE"}},
		{"quorum token", Failed(refusal(ck.CKR_FUNCTION_REJECTED, reason.QuorumTokenInvalid, "quorum token expired or unknown: no token")), ExitFailed,
			[]string{"expired, unknown or not yours"}},
		{"quorum forged", Failed(refusal(ck.CKR_FUNCTION_REJECTED, reason.QuorumApprovalInvalid, `quorum approval is invalid: approval from "x": bad`)), ExitFailed,
			[]string{"an approval does not verify"}},
		{"mTLS enforced", Failed(refusal(ck.CKR_DEVICE_ERROR, reason.ClientCertificateRequired, "client mTLS is enforced (level cluster): client certificate not accepted; configure the client")), ExitFailed,
			[]string{"CKR_DEVICE_ERROR: client mTLS is enforced (level cluster): client certificate not accepted; configure the client"}},
		{"enforce without a certificate", Failed(refusal(ck.CKR_FUNCTION_FAILED, reason.ClientCertificate, "mtls.set-enforcement: client certificate not accepted: no client certificate")), ExitFailed,
			[]string{"configure this client with a certificate", "list-trust-anchors"}},
		{"enforce without an anchor", Failed(refusal(ck.CKR_FUNCTION_FAILED, reason.NoTrustAnchor, "mtls.set-enforcement: no trust anchor is registered")), ExitFailed,
			[]string{"`cluster mtls register-trust-anchor --path CA.pem`"}},
		{"last anchor while enforced", Failed(refusal(ck.CKR_FUNCTION_FAILED, reason.MTLSEnforced, "mtls.deregister-trust-anchor: mTLS enforcement is cluster, which needs a trust anchor")), ExitFailed,
			[]string{"set-enforcement --level none"}},
		{"third anchor", Failed(refusal(ck.CKR_FUNCTION_FAILED, reason.TrustAnchorLimit, "mtls.register-trust-anchor: the cluster holds at most 2 trust anchors")), ExitFailed,
			[]string{"deregister-trust-anchor --certificate-reference REF"}},
		{"reason, not message", Failed(refusal(ck.CKR_FUNCTION_FAILED, reason.NoTrustAnchor, "worded otherwise")), ExitFailed,
			[]string{"`cluster mtls register-trust-anchor --path CA.pem`"}},
		{"no HSM", Failed(fmt.Errorf("dial: %w", client.ErrNoHSM)), ExitFailed, []string{"no HSM answered"}},
		{"outcome unknown", Failed(&client.UnknownOutcomeError{Op: "generate key", HSM: "h", Err: errors.New("eof")}), ExitFailed,
			[]string{"outcome unknown", "check"}},
		{"usage", Usagef("bad flag %q", "x"), ExitUsage, []string{`bad flag "x"`}},
		{"unsupported", Unsupported("client mTLS", "use login"), ExitUsage, []string{"client mTLS: not supported by this cluster yet; use login"}},
		{"cobra's own", errors.New("unknown flag: --frob"), ExitUsage, []string{"unknown flag: --frob"}},
		{"already reported", ExitStatus(3), 3, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg, code := Describe(c.err)
			if code != c.code {
				t.Errorf("code %d, want %d", code, c.code)
			}
			rest := msg
			for _, w := range c.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q lacks %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
			if c.want == nil && msg != "" {
				t.Errorf("message %q for an error reported already", msg)
			}
		})
	}
}

// TestHintsFollowReasons: a message that reads like another refusal gets
// no hint of that refusal's.
func TestHintsFollowReasons(t *testing.T) {
	const said = "no trust anchor is registered; needs 3 approvals, has 1; client certificate not accepted"
	msg, _ := Describe(Failed(&client.Error{RV: ck.CKR_FUNCTION_FAILED, Reason: reason.UserExists, Msg: said}))
	if msg != "CKR_FUNCTION_FAILED: "+said {
		t.Errorf("%q: a hint its reason (USER_EXISTS) does not call for", msg)
	}
}

func TestFailedKeepsTheCause(t *testing.T) {
	err := Failed(&client.Error{RV: ck.CKR_PIN_INCORRECT, Msg: "x"})
	if client.Code(err) != ck.CKR_PIN_INCORRECT {
		t.Errorf("Code = %v", client.Code(err))
	}
	if Failed(nil) != nil {
		t.Error("Failed(nil) is not nil")
	}
	u := Usagef("u")
	if Failed(u) != u {
		t.Error("Failed changed an *Error")
	}
}
