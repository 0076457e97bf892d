package node

import (
	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Limits on what one request may carry. The gRPC limit on a message
// (maxRecvMsgSize) is above them, so an oversized field gets a PKCS#11 answer
// rather than a transport error.
const (
	maxRecvMsgSize = 4 << 20
	maxDataLen     = 1 << 20 // data, ciphertext or a key blob of one call
	maxAttributes  = 256     // attributes in one template
	maxAttrLen     = 64 << 10
	maxTypes       = 1024 // attribute types in one GetAttributes
	maxParamLen    = 64 << 10
	maxNameLen     = 1024 // usernames, passwords, token ids
	maxApprovals   = 64
)

// mechanism converts and checks a request's mechanism.
func mechanism(m *hsmv1.Mechanism) (hsm.Mechanism, error) {
	if m == nil {
		return hsm.Mechanism{}, invalidArgument(ck.CKR_ARGUMENTS_BAD, "mechanism is required")
	}
	for _, p := range [][]byte{m.GetIv(), m.GetAad(), m.GetLabel(), m.GetSharedData(), m.GetPublicData(), m.GetContext()} {
		if len(p) > maxParamLen {
			return hsm.Mechanism{}, invalidArgument(ck.CKR_MECHANISM_PARAM_INVALID, "mechanism parameter of %d bytes exceeds %d", len(p), maxParamLen)
		}
	}
	kdfData, err := kdfDataParams(m.GetKdfData())
	if err != nil {
		return hsm.Mechanism{}, err
	}
	return hsm.Mechanism{
		Type:        ck.MechanismType(m.GetType()),
		IV:          m.GetIv(),
		AAD:         m.GetAad(),
		TagBits:     uint(m.GetTagBits()),
		CounterBits: uint(m.GetCounterBits()),
		Hash:        ck.MechanismType(m.GetHash()),
		MGF:         ck.MGF(m.GetMgf()),
		SaltLen:     uint(m.GetSaltLen()),
		Label:       m.GetLabel(),
		KDF:         ck.KDF(m.GetKdf()),
		SharedData:  m.GetSharedData(),
		PublicData:  m.GetPublicData(),
		MACLen:      uint(m.GetMacLen()),
		Context:     m.GetContext(),
		Hedge:       ck.HedgeType(m.GetHedge()),
		AESKeyBits:  uint(m.GetAesKeyBits()),
		PRF:         ck.MechanismType(m.GetPrf()),
		KDFData:     kdfData,
	}, nil
}

// maxKDFData bounds the data parameters of one SP 800-108 derivation; their
// bytes together stay within maxParamLen.
const maxKDFData = 64

func kdfDataParams(ps []*hsmv1.KDFDataParam) ([]hsm.KDFDataParam, error) {
	if len(ps) > maxKDFData {
		return nil, invalidArgument(ck.CKR_MECHANISM_PARAM_INVALID, "%d KDF data parameters exceed %d", len(ps), maxKDFData)
	}
	var out []hsm.KDFDataParam
	total := 0
	for i, p := range ps {
		if p == nil {
			return nil, invalidArgument(ck.CKR_MECHANISM_PARAM_INVALID, "KDF data parameter %d is empty", i)
		}
		if total += len(p.GetValue()); total > maxParamLen {
			return nil, invalidArgument(ck.CKR_MECHANISM_PARAM_INVALID, "KDF data parameters of more than %d bytes", maxParamLen)
		}
		out = append(out, hsm.KDFDataParam{Type: uint(p.GetType()), WidthBits: uint(p.GetWidthBits()), LittleEndian: p.GetLittleEndian(),
			DKMMethod: uint(p.GetDkmMethod()), Value: p.GetValue()})
	}
	return out, nil
}

// template converts and checks a template.
func template(attrs []*hsmv1.Attribute) (hsm.Template, error) {
	if len(attrs) > maxAttributes {
		return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "template of %d attributes exceeds %d", len(attrs), maxAttributes)
	}
	t := make(hsm.Template, 0, len(attrs))
	for i, a := range attrs {
		if a == nil {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "template attribute %d is empty", i)
		}
		if len(a.GetValue()) > maxAttrLen {
			return nil, invalidArgument(ck.CKR_ATTRIBUTE_VALUE_INVALID, "attribute %v of %d bytes exceeds %d",
				ck.AttributeType(a.GetType()), len(a.GetValue()), maxAttrLen)
		}
		t = append(t, hsm.Attribute{Type: ck.AttributeType(a.GetType()), Value: a.GetValue()})
	}
	return t, nil
}

// data checks the size of a data field.
func data(what string, b []byte) error {
	if len(b) > maxDataLen {
		return invalidArgument(ck.CKR_DATA_LEN_RANGE, "%s of %d bytes exceeds %d", what, len(b), maxDataLen)
	}
	return nil
}

// name checks a short string field (username, password, token id).
func name(what, s string) error {
	if len(s) > maxNameLen {
		return invalidArgument(ck.CKR_ARGUMENTS_BAD, "%s of %d bytes exceeds %d", what, len(s), maxNameLen)
	}
	return nil
}

func approvals(a *hsmv1.Approvals) (hsm.Approvals, error) {
	if a == nil {
		return hsm.Approvals{}, nil
	}
	if len(a.GetSignatures()) > maxApprovals {
		return hsm.Approvals{}, invalidArgument(ck.CKR_ARGUMENTS_BAD, "%d approvals exceed %d", len(a.GetSignatures()), maxApprovals)
	}
	if err := name("quorum token", a.GetToken()); err != nil {
		return hsm.Approvals{}, err
	}
	out := hsm.Approvals{Token: a.GetToken()}
	for i, s := range a.GetSignatures() {
		if s == nil {
			return hsm.Approvals{}, invalidArgument(ck.CKR_ARGUMENTS_BAD, "approval %d is empty", i)
		}
		if err := name("approver", s.GetUsername()); err != nil {
			return hsm.Approvals{}, err
		}
		if len(s.GetSignature()) > maxParamLen {
			return hsm.Approvals{}, invalidArgument(ck.CKR_ARGUMENTS_BAD, "approval %d: signature too long", i)
		}
		out.Signatures = append(out.Signatures, hsm.Approval{Username: s.GetUsername(), Signature: s.GetSignature()})
	}
	return out, nil
}

// quorumService reads the wire names of quorum services.
func quorumService(s string) (hsm.QuorumService, error) {
	for _, q := range []hsm.QuorumService{hsm.QuorumUserManagement, hsm.QuorumQuorumManagement} {
		if q.String() == s {
			return q, nil
		}
	}
	return 0, invalidArgument(ck.CKR_ARGUMENTS_BAD, "unknown quorum service %.64q (want user-management or quorum-management)", s)
}

// function maps the wire's Function to the device's.
func function(f hsmv1.Function) (hsm.Function, error) {
	switch f {
	case hsmv1.Function_FUNCTION_ENCRYPT:
		return hsm.FnEncrypt, nil
	case hsmv1.Function_FUNCTION_DECRYPT:
		return hsm.FnDecrypt, nil
	case hsmv1.Function_FUNCTION_SIGN:
		return hsm.FnSign, nil
	case hsmv1.Function_FUNCTION_VERIFY:
		return hsm.FnVerify, nil
	case hsmv1.Function_FUNCTION_DIGEST:
		return hsm.FnDigest, nil
	}
	return 0, invalidArgument(ck.CKR_ARGUMENTS_BAD, "unknown function %d", int32(f))
}

// keyUses maps the device's KeyUse to the wire's.
var keyUses = [...]hsmv1.KeyUse{
	hsm.NoKey: hsmv1.KeyUse_KEY_USE_NONE, hsm.SecretKey: hsmv1.KeyUse_KEY_USE_SECRET, hsm.KeyPair: hsmv1.KeyUse_KEY_USE_PAIR,
}

// mechanismInfo is the wire's MechanismInfo of mechanism m.
func mechanismInfo(m ck.MechanismType, info hsm.MechanismInfo) *hsmv1.MechanismInfo {
	return &hsmv1.MechanismInfo{
		Type: uint64(m), MinKeySize: uint32(info.MinKeySize), MaxKeySize: uint32(info.MaxKeySize), Flags: uint64(info.CKFlags()),
		KeyType: uint64(info.KeyType), KeyUse: keyUses[info.Key],
	}
}

func quorumTokenInfo(t hsm.QuorumTokenInfo) *hsmv1.QuorumTokenInfo {
	return &hsmv1.QuorumTokenInfo{
		Id: t.ID, Data: t.Data, Service: t.Service.String(), ExpiresUnixNano: t.Expires.UnixNano(),
	}
}
