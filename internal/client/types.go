package client

import (
	"math"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// ObjectID names an object, the same on every HSM of the cluster.
type ObjectID uint64

// Attribute is one attribute of a template.
type Attribute struct {
	Type  ck.AttributeType
	Value []byte
}

// Bool is a CK_BBOOL attribute.
func Bool(t ck.AttributeType, v bool) Attribute {
	b := []byte{0}
	if v {
		b[0] = 1
	}
	return Attribute{Type: t, Value: b}
}

// AttributeValue answers one requested attribute: its value, or the return
// value that says why there is none (e.g. CKR_ATTRIBUTE_SENSITIVE).
type AttributeValue struct {
	Type  ck.AttributeType
	Value []byte
	RV    ck.RV
}

// Mechanism is a mechanism with its parameters, as the device takes it.
type Mechanism struct {
	Type ck.MechanismType

	IV          []byte // AES-CBC, CBC-PAD, GCM; AES-CTR's counter block; KEY_WRAP's IV
	AAD         []byte // AES-GCM
	TagBits     uint   // AES-GCM
	CounterBits uint   // AES-CTR

	Hash    ck.MechanismType // RSA-PSS, OAEP
	MGF     ck.MGF           // RSA-PSS, OAEP
	SaltLen uint             // RSA-PSS
	Label   []byte           // RSA-OAEP

	KDF        ck.KDF // ECDH1_DERIVE
	SharedData []byte // ECDH1_DERIVE
	PublicData []byte // ECDH1_DERIVE: the peer's public point

	MACLen uint // *_GENERAL MACs

	Context    []byte       // ML-DSA: CK_SIGN_ADDITIONAL_CONTEXT's context string
	Hedge      ck.HedgeType // ML-DSA: CK_SIGN_ADDITIONAL_CONTEXT's hedgeVariant
	AESKeyBits uint         // RSA_AES_KEY_WRAP: ulAESKeyBits (OAEP in Hash, MGF, Label)

	PRF     ck.MechanismType // SP800_108_COUNTER_KDF: prfType
	KDFData []KDFDataParam   // SP800_108_COUNTER_KDF: pDataParams, in order
}

// KDFDataParam is one CK_PRF_DATA_PARAM of an SP 800-108 KDF.
type KDFDataParam struct {
	Type         uint   // CK_SP800_108_ITERATION_VARIABLE, _DKM_LENGTH, _BYTE_ARRAY
	WidthBits    uint   // iteration variable and DKM length
	LittleEndian bool   // iteration variable and DKM length
	DKMMethod    uint   // DKM length
	Value        []byte // byte array
}

// ObjectInfo is what an HSM tells about an object besides its attributes.
type ObjectInfo struct {
	ID         ObjectID
	Class      ck.ObjectClass
	KeyType    ck.KeyType
	Label      string
	Token      bool
	Owner      string
	SharedWith []string
}

// KeyFormat is the encoding of a key given to ImportKey.
type KeyFormat int

const (
	PKCS8 KeyFormat = 1 // a private key, PKCS #8 DER
	SPKI  KeyFormat = 2 // a public key, SubjectPublicKeyInfo DER
)

// Function is what a multi-part operation does.
type Function int

const (
	FnEncrypt Function = Function(hsmv1.Function_FUNCTION_ENCRYPT)
	FnDecrypt Function = Function(hsmv1.Function_FUNCTION_DECRYPT)
	FnSign    Function = Function(hsmv1.Function_FUNCTION_SIGN)
	FnVerify  Function = Function(hsmv1.Function_FUNCTION_VERIFY)
	FnDigest  Function = Function(hsmv1.Function_FUNCTION_DIGEST)
)

// UserInfo describes a user of the cluster.
type UserInfo struct {
	Username   string
	Role       string
	Locked     bool
	Failures   int
	QuorumKey  bool
	OwnedKeys  int
	SharedKeys int
}

// Approval is one approver's signature over a quorum token.
type Approval struct {
	Username  string
	Signature []byte
}

// Approvals are the signatures gathered for a quorum token.
type Approvals struct {
	Token      string
	Signatures []Approval
}

// QuorumToken is a token approvers sign for a quorum-controlled operation.
type QuorumToken struct {
	ID      string
	Data    []byte
	Service string
	Expires time.Time
}

// MechanismInfo is one mechanism an HSM supports.
type MechanismInfo struct {
	Type ck.MechanismType
	// MinKeySize and MaxKeySize bound the sizes of its KeyType keys: in
	// bits, in bytes for generic secrets.
	MinKeySize uint
	MaxKeySize uint
	Flags      ck.Flags // CKF_* of CK_MECHANISM_INFO
	// KeyType is the type of the keys the mechanism works with or makes;
	// KeyUse says which of them an operation takes.
	KeyType ck.KeyType
	KeyUse  KeyUse
}

// KeyUse is the key an operation of a mechanism takes.
type KeyUse int

const (
	NoKey     KeyUse = KeyUse(hsmv1.KeyUse_KEY_USE_NONE)   // digests and key generation (or an HSM that does not say)
	SecretKey KeyUse = KeyUse(hsmv1.KeyUse_KEY_USE_SECRET) // a secret key of KeyType
	// KeyPair: a half of a KeyType key pair, the public key to encrypt,
	// verify, wrap and encapsulate, the private key to decrypt, sign,
	// unwrap, derive and decapsulate.
	KeyPair KeyUse = KeyUse(hsmv1.KeyUse_KEY_USE_PAIR)
)

// NodeInfo is what one HSM says about itself.
type NodeInfo struct {
	NodeID         uint32
	ClusterID      string
	HSMID          string
	Ready          bool
	Activated      bool // the cluster's pre-admin has activated it
	FIPS           bool
	Version        string
	CryptoBackend  string // "go", "go fips140" or "boringcrypto"
	TokenObjects   int
	SessionObjects int
	Sessions       int
	Users          int
	Peers          []PeerStatus
}

// PeerStatus is an HSM's view of one of its peers.
type PeerStatus struct {
	NodeID    uint32
	Address   string
	Connected bool
	SyncLag   time.Duration // how far the peer is behind this HSM
	// How far this HSM is behind the peer, as the peer last reported, and
	// how many changes this HSM has queued for the peer.
	BehindRecords int
	Behind        time.Duration
	QueuedRecords int
}

// HSMStatus is one HSM as the client sees it: its address, whether the client
// uses it, and its NodeInfo or the error that prevented getting it.
type HSMStatus struct {
	Address string
	Up      bool
	Info    *NodeInfo
	Err     error
}

// Conversions to and from the wire.

func (m *Mechanism) wire() *hsmv1.Mechanism {
	return &hsmv1.Mechanism{
		Type: uint64(m.Type), Iv: m.IV, Aad: m.AAD, TagBits: uint32(m.TagBits), CounterBits: uint32(m.CounterBits),
		Hash: uint64(m.Hash), Mgf: uint64(m.MGF), SaltLen: uint32(m.SaltLen), Label: m.Label,
		Kdf: uint64(m.KDF), SharedData: m.SharedData, PublicData: m.PublicData, MacLen: uint32(m.MACLen),
		Context: m.Context, Hedge: uint64(m.Hedge),
		AesKeyBits: uint32(m.AESKeyBits), Prf: uint64(m.PRF), KdfData: wireKDFData(m.KDFData),
	}
}

func wireKDFData(ps []KDFDataParam) []*hsmv1.KDFDataParam {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*hsmv1.KDFDataParam, len(ps))
	for i, p := range ps {
		out[i] = &hsmv1.KDFDataParam{Type: uint64(p.Type), WidthBits: uint32(p.WidthBits), LittleEndian: p.LittleEndian,
			DkmMethod: uint64(p.DKMMethod), Value: p.Value}
	}
	return out
}

func wireTemplate(attrs []Attribute) []*hsmv1.Attribute {
	out := make([]*hsmv1.Attribute, len(attrs))
	for i, a := range attrs {
		out[i] = &hsmv1.Attribute{Type: uint64(a.Type), Value: a.Value}
	}
	return out
}

// isToken reports whether a template makes a token object (CKA_TOKEN true;
// PKCS#11's default is false).
func isToken(attrs []Attribute) bool {
	for _, a := range attrs {
		if a.Type == ck.CKA_TOKEN {
			return len(a.Value) > 0 && a.Value[0] != 0
		}
	}
	return false
}

func wireApprovals(a *Approvals) *hsmv1.Approvals {
	if a == nil {
		return nil
	}
	out := &hsmv1.Approvals{Token: a.Token, Signatures: make([]*hsmv1.Approval, len(a.Signatures))}
	for i, s := range a.Signatures {
		out.Signatures[i] = &hsmv1.Approval{Username: s.Username, Signature: s.Signature}
	}
	return out
}

func fromQuorumToken(t *hsmv1.QuorumTokenInfo) QuorumToken {
	return QuorumToken{ID: t.GetId(), Data: t.GetData(), Service: t.GetService(), Expires: time.Unix(0, t.GetExpiresUnixNano())}
}

func fromNodeInfo(r *hsmv1.NodeInfoResponse) *NodeInfo {
	n := &NodeInfo{
		NodeID: r.GetNodeId(), ClusterID: r.GetClusterId(), HSMID: r.GetHsmId(), Ready: r.GetReady(), Activated: r.GetActivated(), FIPS: r.GetFips(),
		Version: r.GetVersion(), TokenObjects: int(r.GetTokenObjects()), SessionObjects: int(r.GetSessionObjects()),
		Sessions: int(r.GetSessions()), Users: int(r.GetUsers()), CryptoBackend: r.GetCryptoBackend(),
	}
	for _, p := range r.GetPeers() {
		n.Peers = append(n.Peers, PeerStatus{
			NodeID: p.GetNodeId(), Address: p.GetAddress(), Connected: p.GetConnected(),
			SyncLag:       time.Duration(p.GetSyncLagNanos()),
			BehindRecords: int(min(p.GetBehindRecords(), math.MaxInt32)), Behind: time.Duration(p.GetBehindNanos()),
			QueuedRecords: int(min(p.GetQueuedRecords(), math.MaxInt32)),
		})
	}
	return n
}
