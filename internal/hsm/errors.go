package hsm

import (
	"errors"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1/reason"
)

// Error is a refusal of the device: the PKCS#11 return value it maps to, the
// operation refused, and why. Callers branch with errors.Is against the
// sentinels below, or read Code for the wire.
type Error struct {
	Op  string // e.g. "sign", "user.create"
	Err error  // wraps one of the sentinels below
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Kind is a class of refusal with its PKCS#11 return value. Each sentinel is
// a distinct *Kind, so two refusals that share a CKR code remain
// distinguishable to Go callers.
type Kind struct {
	RV     ck.RV
	Reason string // its stable name on the wire (proto/hsmv1/reason)
	msg    string
}

func (k *Kind) Error() string { return k.msg }

// Code is the PKCS#11 return value for err: CKR_OK for nil, the Kind's value
// for a device refusal, and CKR_GENERAL_ERROR for anything else.
func Code(err error) ck.RV {
	if err == nil {
		return ck.CKR_OK
	}
	var k *Kind
	if errors.As(err, &k) {
		return k.RV
	}
	return ck.CKR_GENERAL_ERROR
}

// ApprovalsShortError is a refusal for want of quorum approvals
// (errors.Is(err, ErrQuorumRequired) holds): how many valid approvals the
// operation needs and how many it had.
type ApprovalsShortError struct{ Needed, Given int }

func (e *ApprovalsShortError) Error() string {
	return fmt.Sprintf("%v: needs %d approvals, has %d", ErrQuorumRequired, e.Needed, e.Given)
}

func (e *ApprovalsShortError) Unwrap() error { return ErrQuorumRequired }

func opErr(op string, kind *Kind, format string, args ...any) error {
	if format == "" {
		return &Error{Op: op, Err: kind}
	}
	return &Error{Op: op, Err: fmt.Errorf("%w: "+format, append([]any{kind}, args...)...)}
}

// The device's refusals. This table is the one place where a device error
// gets its PKCS#11 code and its reason on the wire.
var (
	// Sessions and login.
	ErrSessionHandleInvalid = &Kind{ck.CKR_SESSION_HANDLE_INVALID, reason.SessionHandleInvalid, "no such session"}
	ErrNotLoggedIn          = &Kind{ck.CKR_USER_NOT_LOGGED_IN, reason.NotLoggedIn, "not logged in"}
	ErrAlreadyLoggedIn      = &Kind{ck.CKR_USER_ALREADY_LOGGED_IN, reason.AlreadyLoggedIn, "session is already logged in"}
	ErrPinIncorrect         = &Kind{ck.CKR_PIN_INCORRECT, reason.PinIncorrect, "incorrect username or password"}
	ErrPinLocked            = &Kind{ck.CKR_PIN_LOCKED, reason.PinLocked, "user is locked after too many failed logins; an admin must reset the password"}
	ErrPinInvalid           = &Kind{ck.CKR_PIN_LEN_RANGE, reason.PinInvalid, "password does not meet the length rules"}
	ErrUserTypeInvalid      = &Kind{ck.CKR_USER_TYPE_INVALID, reason.UserTypeInvalid, "unknown role"}
	ErrNotActivated         = &Kind{ck.CKR_USER_PIN_NOT_INITIALIZED, reason.NotActivated, "cluster is not activated: the pre-admin must change the default password first"}
	ErrAdminCannotUseKeys   = &Kind{ck.CKR_USER_NOT_LOGGED_IN, reason.AdminCannotUseKeys, "admins manage users but cannot use keys: log in as a crypto user"}
	ErrRoleNotPermitted     = &Kind{ck.CKR_USER_TYPE_INVALID, reason.RoleNotPermitted, "the logged-in role may not do this"}
	ErrTooManyOperations    = &Kind{ck.CKR_DEVICE_MEMORY, reason.TooManyOperations, "the session or the HSM runs as many multi-part operations as it may: finish or abort some"}
	ErrOperationNotInit     = &Kind{ck.CKR_OPERATION_NOT_INITIALIZED, reason.OperationNotInit, "no such operation in progress"}

	// Users and quorum.
	ErrUserExists       = &Kind{ck.CKR_FUNCTION_FAILED, reason.UserExists, "user already exists"}
	ErrUserNotFound     = &Kind{ck.CKR_ARGUMENTS_BAD, reason.UserNotFound, "no such user"}
	ErrUserOwnsKeys     = &Kind{ck.CKR_FUNCTION_FAILED, reason.UserOwnsKeys, "user owns keys that would become unusable; delete them or force"}
	ErrLastAdmins       = &Kind{ck.CKR_FUNCTION_FAILED, reason.LastAdmins, "change would leave fewer admins than the quorum value + 2; add admins first or force"}
	ErrCannotDeleteSelf = &Kind{ck.CKR_FUNCTION_FAILED, reason.CannotDeleteSelf, "a user cannot delete itself"}
	ErrQuorumRequired   = &Kind{ck.CKR_FUNCTION_REJECTED, reason.QuorumRequired, "operation needs quorum approvals"}
	ErrQuorumInvalid    = &Kind{ck.CKR_FUNCTION_REJECTED, reason.QuorumApprovalInvalid, "quorum approval is invalid"}
	ErrQuorumValue      = &Kind{ck.CKR_ARGUMENTS_BAD, reason.QuorumValueRange, "quorum value out of range"}
	ErrTokenExpired     = &Kind{ck.CKR_FUNCTION_REJECTED, reason.QuorumTokenInvalid, "quorum token expired or unknown"}

	// Replication between clones.
	ErrReplicaRefused = &Kind{ck.CKR_FUNCTION_FAILED, reason.ReplicaRefused, "replica refused"}

	// Client mTLS.
	ErrTrustAnchorInvalid  = &Kind{ck.CKR_ARGUMENTS_BAD, reason.TrustAnchorInvalid, "certificate cannot be a trust anchor"}
	ErrTrustAnchorExists   = &Kind{ck.CKR_FUNCTION_FAILED, reason.TrustAnchorExists, "trust anchor is registered already"}
	ErrTrustAnchorLimit    = &Kind{ck.CKR_FUNCTION_FAILED, reason.TrustAnchorLimit, "the cluster holds at most 2 trust anchors: deregister one first"}
	ErrTrustAnchorNotFound = &Kind{ck.CKR_ARGUMENTS_BAD, reason.TrustAnchorNotFound, "no trust anchor with that reference"}
	ErrNoTrustAnchor       = &Kind{ck.CKR_FUNCTION_FAILED, reason.NoTrustAnchor, "no trust anchor is registered: register the CA of the client certificates first"}
	ErrMTLSEnforced        = &Kind{ck.CKR_FUNCTION_FAILED, reason.MTLSEnforced, "mTLS enforcement is cluster, which needs a trust anchor: set the enforcement level to none first"}
	ErrClientCertificate   = &Kind{ck.CKR_FUNCTION_FAILED, reason.ClientCertificate, "client certificate not accepted"}

	// Objects and attributes.
	ErrObjectHandleInvalid   = &Kind{ck.CKR_OBJECT_HANDLE_INVALID, reason.ObjectHandleInvalid, "no such object"}
	ErrKeyHandleInvalid      = &Kind{ck.CKR_KEY_HANDLE_INVALID, reason.KeyHandleInvalid, "no such key"}
	ErrAttributeTypeInvalid  = &Kind{ck.CKR_ATTRIBUTE_TYPE_INVALID, reason.AttributeTypeInvalid, "attribute not valid for this object"}
	ErrAttributeValueInvalid = &Kind{ck.CKR_ATTRIBUTE_VALUE_INVALID, reason.AttributeValueInvalid, "attribute value invalid"}
	ErrAttributeReadOnly     = &Kind{ck.CKR_ATTRIBUTE_READ_ONLY, reason.AttributeReadOnly, "attribute cannot be set"}
	ErrAttributeSensitive    = &Kind{ck.CKR_ATTRIBUTE_SENSITIVE, reason.AttributeSensitive, "attribute is sensitive and cannot be read"}
	ErrTemplateIncomplete    = &Kind{ck.CKR_TEMPLATE_INCOMPLETE, reason.TemplateIncomplete, "template is missing a required attribute"}
	ErrTemplateInconsistent  = &Kind{ck.CKR_TEMPLATE_INCONSISTENT, reason.TemplateInconsistent, "template is inconsistent"}
	ErrActionProhibited      = &Kind{ck.CKR_ACTION_PROHIBITED, reason.ActionProhibited, "object's attributes forbid this"}
	ErrNotOwner              = &Kind{ck.CKR_ACTION_PROHIBITED, reason.NotOwner, "only the key's owner may do this"}
	ErrKeyNotExtractable     = &Kind{ck.CKR_KEY_UNEXTRACTABLE, reason.KeyUnextractable, "key is not extractable"}
	ErrKeyNotWrappable       = &Kind{ck.CKR_KEY_NOT_WRAPPABLE, reason.KeyNotWrappable, "key can only be wrapped with a trusted key"}
	ErrKeyFunctionDenied     = &Kind{ck.CKR_KEY_FUNCTION_NOT_PERMITTED, reason.KeyFunctionDenied, "key's attributes do not permit this function"}
	ErrKeyTypeInconsistent   = &Kind{ck.CKR_KEY_TYPE_INCONSISTENT, reason.KeyTypeInconsistent, "key type does not fit the mechanism"}
	ErrKeySizeRange          = &Kind{ck.CKR_KEY_SIZE_RANGE, reason.KeySizeRange, "key size out of range"}
	ErrWrappingKeyInvalid    = &Kind{ck.CKR_WRAPPING_KEY_TYPE_INCONSISTENT, reason.WrappingKeyInvalid, "wrapping key does not fit the mechanism"}
	ErrUnwrappingKeyInvalid  = &Kind{ck.CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, reason.UnwrappingKeyInvalid, "unwrapping key does not fit the mechanism"}
	ErrWrappedKeyInvalid     = &Kind{ck.CKR_WRAPPED_KEY_INVALID, reason.WrappedKeyInvalid, "wrapped key is invalid"}
	ErrDeviceMemory          = &Kind{ck.CKR_DEVICE_MEMORY, reason.ObjectLimit, "object limit reached"}
	ErrNotShared             = &Kind{ck.CKR_ARGUMENTS_BAD, reason.NotShared, "key is not shared with that user"}
	ErrKeyNoEncoding         = &Kind{ck.CKR_KEY_NOT_WRAPPABLE, reason.KeyNoEncoding, "key has no encoding to wrap or export it in"}

	// Mechanisms and data.
	ErrMechanismInvalid      = &Kind{ck.CKR_MECHANISM_INVALID, reason.MechanismInvalid, "mechanism not supported for this function"}
	ErrMechanismParamInvalid = &Kind{ck.CKR_MECHANISM_PARAM_INVALID, reason.MechanismParamInvalid, "mechanism parameter invalid"}
	ErrDataLenRange          = &Kind{ck.CKR_DATA_LEN_RANGE, reason.DataLenRange, "data length invalid for the mechanism"}
	ErrCollectMemory         = &Kind{ck.CKR_DEVICE_MEMORY, reason.MultipartInputLimit, "the HSM holds as much multi-part input as it may: finish or abort other operations"}
	ErrEncryptedDataInvalid  = &Kind{ck.CKR_ENCRYPTED_DATA_INVALID, reason.EncryptedDataInvalid, "encrypted data is invalid"}
	ErrEncryptedDataLen      = &Kind{ck.CKR_ENCRYPTED_DATA_LEN_RANGE, reason.EncryptedDataLenRange, "encrypted data length invalid"}
	ErrSignatureInvalid      = &Kind{ck.CKR_SIGNATURE_INVALID, reason.SignatureInvalid, "signature is invalid"}
	ErrSignatureLenRange     = &Kind{ck.CKR_SIGNATURE_LEN_RANGE, reason.SignatureLenRange, "signature length invalid"}
	ErrArgumentsBad          = &Kind{ck.CKR_ARGUMENTS_BAD, reason.ArgumentsBad, "bad arguments"}
	ErrFIPSNotApproved       = &Kind{ck.CKR_MECHANISM_INVALID, reason.FIPSNotApproved, "mechanism not approved in FIPS mode"}
	ErrDevice                = &Kind{ck.CKR_DEVICE_ERROR, reason.DeviceError, "device error"}
)
