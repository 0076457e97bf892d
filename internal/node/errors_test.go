package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestErrorClasses checks, over the wire, that every class of refusal
// arrives with its gRPC code and ErrorInfo reason.
func TestErrorClasses(t *testing.T) {
	pki := newTestPKI(t, "cluster-errors")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Device.MaxLoginFailures = 2
	cfg.Device.MaxObjects = 16
	cfg.Limits.LoginFailureDelay = time.Nanosecond // bob is locked from one address at once
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	ctx := t.Context()
	activate(t, c)
	s := cuSession(t, c)
	anon := open(t, c)
	aes, err := aesKey(t, c, s, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	locked, err := c.GenerateKey(ctx, &hsmv1.GenerateKeyRequest{Session: s, Mechanism: mechOf(ck.CKM_AES_KEY_GEN),
		Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 16), boolAttr(ck.CKA_EXTRACTABLE, false), boolAttr(ck.CKA_ENCRYPT, false)}})
	if err != nil {
		t.Fatal(err)
	}
	// bob is locked out after two failed logins.
	admin := open(t, c)
	must(t)(c.Login(ctx, &hsmv1.LoginRequest{Session: admin, Role: "admin", Username: "admin", Password: adminPW}))
	must(t)(c.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: admin, Username: "bob", Role: "crypto-user", Password: "bob-password-1"}))
	for range 2 {
		_, err := c.Login(ctx, &hsmv1.LoginRequest{Session: open(t, c), Role: "crypto-user", Username: "bob", Password: "wrong-password"})
		wantErr(t, err, codes.Unauthenticated, "CKR_PIN_INCORRECT")
	}
	gcm := &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_GCM), Iv: make([]byte, 12), TagBits: 128}

	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		rv   string
	}{
		{"unknown session", func() error {
			_, err := c.Logout(ctx, &hsmv1.SessionRequest{Session: 12345})
			return err
		}, codes.NotFound, "CKR_SESSION_HANDLE_INVALID"},
		{"unknown object", func() error {
			_, err := c.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: s, Object: 777})
			return err
		}, codes.NotFound, "CKR_OBJECT_HANDLE_INVALID"},
		{"unknown key", func() error {
			_, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: 777, Mechanism: gcm, Data: []byte("x")})
			return err
		}, codes.NotFound, "CKR_KEY_HANDLE_INVALID"},
		{"unknown operation", func() error {
			_, err := c.Finish(ctx, &hsmv1.FinishRequest{Session: s, Operation: 99})
			return err
		}, codes.NotFound, "CKR_OPERATION_NOT_INITIALIZED"},
		{"not logged in", func() error {
			_, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: anon, Key: aes.GetObject(), Mechanism: gcm, Data: []byte("x")})
			return err
		}, codes.Unauthenticated, "CKR_USER_NOT_LOGGED_IN"},
		{"wrong password", func() error {
			_, err := c.Login(ctx, &hsmv1.LoginRequest{Session: open(t, c), Role: "crypto-user", Username: cuName, Password: "wrong-password"})
			return err
		}, codes.Unauthenticated, "CKR_PIN_INCORRECT"},
		{"locked user", func() error {
			_, err := c.Login(ctx, &hsmv1.LoginRequest{Session: open(t, c), Role: "crypto-user", Username: "bob", Password: "bob-password-1"})
			return err
		}, codes.Unauthenticated, "CKR_PIN_LOCKED"},
		{"unknown role", func() error {
			_, err := c.Login(ctx, &hsmv1.LoginRequest{Session: open(t, c), Role: "root", Username: cuName, Password: cuPW})
			return err
		}, codes.PermissionDenied, "CKR_USER_TYPE_INVALID"},
		{"crypto user manages users", func() error {
			_, err := c.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: s, Username: "carol", Role: "crypto-user", Password: "carol-password"})
			return err
		}, codes.PermissionDenied, "CKR_USER_TYPE_INVALID"},
		{"unextractable", func() error {
			_, err := c.ExportKey(ctx, &hsmv1.ObjectRequest{Session: s, Object: locked.GetObject()})
			return err
		}, codes.PermissionDenied, "CKR_KEY_UNEXTRACTABLE"},
		{"function not permitted", func() error {
			_, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: locked.GetObject(), Mechanism: gcm, Data: []byte("x")})
			return err
		}, codes.PermissionDenied, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
		{"unknown mechanism", func() error {
			_, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: aes.GetObject(), Mechanism: mechOf(0xdead), Data: []byte("x")})
			return err
		}, codes.FailedPrecondition, "CKR_MECHANISM_INVALID"},
		{"already logged in", func() error {
			_, err := c.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: cuName, Password: cuPW})
			return err
		}, codes.FailedPrecondition, "CKR_USER_ALREADY_LOGGED_IN"},
		{"min_nodes above cluster size", func() error {
			_, err := aesKey(t, c, s, true, 2)
			return err
		}, codes.FailedPrecondition, "CKR_FUNCTION_FAILED"},
		{"nil mechanism", func() error {
			_, err := c.Sign(ctx, &hsmv1.CryptRequest{Session: s, Key: aes.GetObject(), Data: []byte("x")})
			return err
		}, codes.InvalidArgument, "CKR_ARGUMENTS_BAD"},
		{"oversized data", func() error {
			_, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: aes.GetObject(), Mechanism: gcm, Data: make([]byte, maxDataLen+1)})
			return err
		}, codes.InvalidArgument, "CKR_DATA_LEN_RANGE"},
		{"unknown function", func() error {
			_, err := c.Begin(ctx, &hsmv1.BeginRequest{Session: s, Function: 42, Key: aes.GetObject(), Mechanism: gcm})
			return err
		}, codes.InvalidArgument, "CKR_ARGUMENTS_BAD"},
		{"unknown quorum service", func() error {
			_, err := c.QuorumToken(ctx, &hsmv1.QuorumTokenRequest{Session: admin, Service: "everything"})
			return err
		}, codes.InvalidArgument, "CKR_ARGUMENTS_BAD"},
		{"template too long", func() error {
			_, err := c.CreateObject(ctx, &hsmv1.CreateObjectRequest{Session: s, Template: make([]*hsmv1.Attribute, maxAttributes+1)})
			return err
		}, codes.InvalidArgument, "CKR_ARGUMENTS_BAD"},
		{"attribute too long", func() error {
			_, err := c.CreateObject(ctx, &hsmv1.CreateObjectRequest{Session: s, Template: []*hsmv1.Attribute{{Type: uint64(ck.CKA_LABEL), Value: make([]byte, maxAttrLen+1)}}})
			return err
		}, codes.InvalidArgument, "CKR_ATTRIBUTE_VALUE_INVALID"},
		{"too much random", func() error {
			_, err := c.GenerateRandom(ctx, &hsmv1.RandomRequest{Session: s, Length: maxRandom + 1})
			return err
		}, codes.InvalidArgument, "CKR_ARGUMENTS_BAD"},
		// Last: fills the device (MaxObjects 16).
		{"device full", func() error {
			for i := 0; i < 32; i++ {
				if _, err := aesKey(t, c, s, false, 0); err != nil {
					return err
				}
			}
			return errors.New("the device never filled up")
		}, codes.Internal, "CKR_DEVICE_MEMORY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			wantErr(t, err, tc.code, tc.rv)
			if tc.code != codes.InvalidArgument && status.Convert(err).Message() == "" {
				t.Error("refusal without a message")
			}
		})
	}
}

func TestCodeOf(t *testing.T) {
	for rv, want := range map[ck.RV]codes.Code{
		ck.CKR_SESSION_HANDLE_INVALID: codes.NotFound, ck.CKR_OBJECT_HANDLE_INVALID: codes.NotFound,
		ck.CKR_KEY_HANDLE_INVALID: codes.NotFound, ck.CKR_OPERATION_NOT_INITIALIZED: codes.NotFound,
		ck.CKR_USER_NOT_LOGGED_IN: codes.Unauthenticated, ck.CKR_PIN_INCORRECT: codes.Unauthenticated,
		ck.CKR_PIN_LOCKED: codes.Unauthenticated, ck.CKR_ACTION_PROHIBITED: codes.PermissionDenied,
		ck.CKR_KEY_UNEXTRACTABLE: codes.PermissionDenied, ck.CKR_KEY_FUNCTION_NOT_PERMITTED: codes.PermissionDenied,
		ck.CKR_USER_TYPE_INVALID: codes.PermissionDenied, ck.CKR_FUNCTION_REJECTED: codes.PermissionDenied,
		ck.CKR_DEVICE_ERROR: codes.Internal, ck.CKR_DEVICE_MEMORY: codes.Internal,
		ck.CKR_SIGNATURE_INVALID: codes.FailedPrecondition, ck.CKR_TEMPLATE_INCOMPLETE: codes.FailedPrecondition,
	} {
		if got := codeOf(rv); got != want {
			t.Errorf("codeOf(%v) = %v, want %v", rv, got, want)
		}
	}
}

// TestDeviceStatus covers the errors that are not device refusals.
func TestDeviceStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
		rv   string
	}{
		{"nil", nil, codes.OK, ""},
		{"refusal", &hsm.Error{Op: "sign", Err: hsm.ErrSignatureInvalid}, codes.FailedPrecondition, "CKR_SIGNATURE_INVALID"},
		{"wrapped refusal", fmt.Errorf("x: %w", hsm.ErrPinLocked), codes.Unauthenticated, "CKR_PIN_LOCKED"},
		{"store failure", fmt.Errorf("put: %w", store.ErrClosed), codes.Internal, "CKR_DEVICE_ERROR"},
		{"caller gone", fmt.Errorf("put: %w", context.Canceled), codes.Canceled, ""},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, ""},
		{"status passes", status.Error(codes.Unavailable, "x"), codes.Unavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := deviceStatus(tc.err)
			if status.Code(err) != tc.code || rvName(err) != tc.rv {
				t.Errorf("deviceStatus(%v) = %v (reason %q), want %v %q", tc.err, err, rvName(err), tc.code, tc.rv)
			}
		})
	}
	// The ErrorInfo carries the rv in hex.
	st := status.Convert(refusal(ck.CKR_DATA_LEN_RANGE, "too long"))
	if len(st.Details()) != 1 || !bytes.Contains([]byte(fmt.Sprint(st.Details()[0])), []byte(`"0x21"`)) {
		t.Errorf("details = %v, want rv 0x21", st.Details())
	}
}

func TestRecoverUnary(t *testing.T) {
	n := &Node{log: slog.New(slog.DiscardHandler)}
	_, err := n.recoverUnary(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		var m map[string]int
		m["boom"]++ // nil map write: a panic
		return nil, nil
	})
	wantErr(t, err, codes.Internal, "CKR_DEVICE_ERROR")
	err = n.recoverStream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Z"}, func(any, grpc.ServerStream) error { panic("boom") })
	wantErr(t, err, codes.Internal, "CKR_DEVICE_ERROR")
}

// TestRefusalReasons: device refusals that share a CKR code arrive with
// reasons of their own, and a quorum shortfall with its counts.
func TestRefusalReasons(t *testing.T) {
	for _, tc := range []struct {
		err        error
		rv, reason string
	}{
		{fmt.Errorf("user.create: %w", hsm.ErrUserExists), "CKR_FUNCTION_FAILED", "USER_EXISTS"},
		{fmt.Errorf("user.delete: %w", hsm.ErrUserOwnsKeys), "CKR_FUNCTION_FAILED", "USER_OWNS_KEYS"},
		{fmt.Errorf("mtls: %w", hsm.ErrNoTrustAnchor), "CKR_FUNCTION_FAILED", "NO_TRUST_ANCHOR"},
		{fmt.Errorf("mtls: %w", hsm.ErrTrustAnchorLimit), "CKR_FUNCTION_FAILED", "TRUST_ANCHOR_LIMIT"},
		{fmt.Errorf("sign: %w", hsm.ErrAdminCannotUseKeys), "CKR_USER_NOT_LOGGED_IN", "ADMIN_CANNOT_USE_KEYS"},
		{fmt.Errorf("sign: %w", hsm.ErrNotLoggedIn), "CKR_USER_NOT_LOGGED_IN", "NOT_LOGGED_IN"},
		{fmt.Errorf("put: %w", store.ErrClosed), "CKR_DEVICE_ERROR", "INTERNAL"},
		{refusal(ck.CKR_SESSION_COUNT, "too many"), "CKR_SESSION_COUNT", "REQUEST_REFUSED"},
		{errThrottled(time.Second, "later"), "CKR_FUNCTION_FAILED", "LOGIN_THROTTLED"},
	} {
		err := deviceStatus(tc.err)
		if rvName(err) != tc.rv || reasonOf(err) != tc.reason {
			t.Errorf("%v: %s %s, want %s %s", tc.err, rvName(err), reasonOf(err), tc.rv, tc.reason)
		}
	}
	err := deviceStatus(&hsm.Error{Op: "user.create", Err: &hsm.ApprovalsShortError{Needed: 3, Given: 1}})
	if reasonOf(err) != "QUORUM_REQUIRED" || rvName(err) != "CKR_FUNCTION_REJECTED" {
		t.Fatalf("quorum shortfall: %v (%s %s)", err, rvName(err), reasonOf(err))
	}
	for _, d := range status.Convert(err).Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok {
			continue
		}
		if md := info.GetMetadata(); md["approvals_needed"] != "3" || md["approvals_given"] != "1" {
			t.Errorf("quorum shortfall metadata %v", md)
		}
	}
}
