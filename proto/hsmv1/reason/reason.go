// Package reason is the wire's vocabulary for an HSM's refusals. A refusal
// travels as a gRPC status whose details hold an ErrorInfo with Domain,
// a Reason from this list and Metadata: MetaRV (the PKCS#11 return value in
// hex) and, for some reasons, the keys named below. The names are stable:
// clients branch on them, never on the message, which is for people.
//
// The package imports nothing, so the device (internal/hsm), the node and
// the clients all take the names from here.
package reason

// Domain is ErrorInfo.Domain of every refusal by an HSM.
const Domain = "coffer.hsm"

// Metadata keys.
const (
	MetaRV              = "rv"               // the PKCS#11 return value, e.g. "0xa0"
	MetaApprovalsNeeded = "approvals_needed" // QuorumRequired: approvals the operation needs
	MetaApprovalsGiven  = "approvals_given"  // QuorumRequired: valid approvals it had
)

// Refusals of the device (internal/hsm's error table).
const (
	SessionHandleInvalid  = "SESSION_HANDLE_INVALID"
	NotLoggedIn           = "NOT_LOGGED_IN"
	AlreadyLoggedIn       = "ALREADY_LOGGED_IN"
	PinIncorrect          = "PIN_INCORRECT"
	PinLocked             = "PIN_LOCKED"
	PinInvalid            = "PIN_INVALID"
	UserTypeInvalid       = "USER_TYPE_INVALID"
	NotActivated          = "NOT_ACTIVATED"
	AdminCannotUseKeys    = "ADMIN_CANNOT_USE_KEYS"
	RoleNotPermitted      = "ROLE_NOT_PERMITTED"
	TooManyOperations     = "TOO_MANY_OPERATIONS"
	OperationNotInit      = "OPERATION_NOT_INITIALIZED"
	UserExists            = "USER_EXISTS"
	UserNotFound          = "USER_NOT_FOUND"
	UserOwnsKeys          = "USER_OWNS_KEYS"
	LastAdmins            = "LAST_ADMINS"
	CannotDeleteSelf      = "CANNOT_DELETE_SELF"
	QuorumRequired        = "QUORUM_REQUIRED"
	QuorumApprovalInvalid = "QUORUM_APPROVAL_INVALID"
	QuorumValueRange      = "QUORUM_VALUE_RANGE"
	QuorumTokenInvalid    = "QUORUM_TOKEN_INVALID"
	ReplicaRefused        = "REPLICA_REFUSED"
	TrustAnchorInvalid    = "TRUST_ANCHOR_INVALID"
	TrustAnchorExists     = "TRUST_ANCHOR_EXISTS"
	TrustAnchorLimit      = "TRUST_ANCHOR_LIMIT"
	TrustAnchorNotFound   = "TRUST_ANCHOR_NOT_FOUND"
	NoTrustAnchor         = "NO_TRUST_ANCHOR"
	MTLSEnforced          = "MTLS_ENFORCED"
	ClientCertificate     = "CLIENT_CERTIFICATE_NOT_ACCEPTED"
	ObjectHandleInvalid   = "OBJECT_HANDLE_INVALID"
	KeyHandleInvalid      = "KEY_HANDLE_INVALID"
	AttributeTypeInvalid  = "ATTRIBUTE_TYPE_INVALID"
	AttributeValueInvalid = "ATTRIBUTE_VALUE_INVALID"
	AttributeReadOnly     = "ATTRIBUTE_READ_ONLY"
	AttributeSensitive    = "ATTRIBUTE_SENSITIVE"
	TemplateIncomplete    = "TEMPLATE_INCOMPLETE"
	TemplateInconsistent  = "TEMPLATE_INCONSISTENT"
	ActionProhibited      = "ACTION_PROHIBITED"
	NotOwner              = "NOT_OWNER"
	KeyUnextractable      = "KEY_UNEXTRACTABLE"
	KeyNotWrappable       = "KEY_NOT_WRAPPABLE"
	KeyNoEncoding         = "KEY_NO_ENCODING"
	KeyFunctionDenied     = "KEY_FUNCTION_NOT_PERMITTED"
	KeyTypeInconsistent   = "KEY_TYPE_INCONSISTENT"
	KeySizeRange          = "KEY_SIZE_RANGE"
	WrappingKeyInvalid    = "WRAPPING_KEY_INVALID"
	UnwrappingKeyInvalid  = "UNWRAPPING_KEY_INVALID"
	WrappedKeyInvalid     = "WRAPPED_KEY_INVALID"
	ObjectLimit           = "OBJECT_LIMIT"
	NotShared             = "NOT_SHARED"
	MechanismInvalid      = "MECHANISM_INVALID"
	MechanismParamInvalid = "MECHANISM_PARAM_INVALID"
	DataLenRange          = "DATA_LEN_RANGE"
	MultipartInputLimit   = "MULTIPART_INPUT_LIMIT"
	EncryptedDataInvalid  = "ENCRYPTED_DATA_INVALID"
	EncryptedDataLenRange = "ENCRYPTED_DATA_LEN_RANGE"
	SignatureInvalid      = "SIGNATURE_INVALID"
	SignatureLenRange     = "SIGNATURE_LEN_RANGE"
	ArgumentsBad          = "ARGUMENTS_BAD"
	FIPSNotApproved       = "FIPS_NOT_APPROVED"
	DeviceError           = "DEVICE_ERROR"
)

// Refusals the node makes itself, before or around the device.
const (
	// Request is a request the node refuses on its own (a malformed or
	// oversized argument, a session limit, a deleted object): the return
	// value says which.
	Request = "REQUEST_REFUSED"
	// MinNodesNotMet: fewer HSMs than the request's min_nodes stored the
	// new key in time; it was removed.
	MinNodesNotMet = "MIN_NODES_NOT_MET"
	// DiskFull: the HSM's disk is full; nothing was stored.
	DiskFull = "DISK_FULL"
	// LoginThrottled: the node will not run a login from this client now;
	// a RetryInfo says when to try again.
	LoginThrottled = "LOGIN_THROTTLED"
	// ClientCertificateRequired: the cluster enforces client mTLS and the
	// connection has no accepted client certificate.
	ClientCertificateRequired = "CLIENT_CERTIFICATE_REQUIRED"
	// Internal: the HSM failed (a store failure, a bug); the message says
	// what it could.
	Internal = "INTERNAL"
)
