package hsm

import (
	"slices"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// Mechanism is a PKCS#11 mechanism with its parameters, flattened: each
// mechanism reads the fields its CK_*_PARAMS structure has and ignores the
// rest.
type Mechanism struct {
	Type ck.MechanismType

	IV          []byte // AES-CBC, CBC-PAD, GCM (12 zero bytes: the device generates it); AES-CTR's 16-byte counter block; KEY_WRAP's optional IV
	AAD         []byte // AES-GCM additional authenticated data
	TagBits     uint   // AES-GCM tag length in bits
	CounterBits uint   // AES-CTR counter width (ulCounterBits)

	Hash    ck.MechanismType // RSA-PSS and OAEP: hashAlg
	MGF     ck.MGF           // RSA-PSS and OAEP: mgf
	SaltLen uint             // RSA-PSS: sLen
	Label   []byte           // RSA-OAEP: pSourceData

	KDF        ck.KDF // ECDH1_DERIVE
	SharedData []byte // ECDH1_DERIVE
	PublicData []byte // ECDH1_DERIVE: the peer's public point

	MACLen uint // *_GENERAL MACs: output length in bytes

	Context    []byte       // ML-DSA: CK_SIGN_ADDITIONAL_CONTEXT's context string (at most 255 bytes)
	Hedge      ck.HedgeType // ML-DSA: CK_SIGN_ADDITIONAL_CONTEXT's hedgeVariant
	AESKeyBits uint         // RSA_AES_KEY_WRAP: ulAESKeyBits (OAEP in Hash, MGF, Label)

	PRF     ck.MechanismType // SP800_108_COUNTER_KDF: prfType
	KDFData []KDFDataParam   // SP800_108_COUNTER_KDF: pDataParams, in order
}

// KDFDataParam is one CK_PRF_DATA_PARAM of an SP 800-108 KDF: Type is
// CK_SP800_108_ITERATION_VARIABLE, _DKM_LENGTH or _BYTE_ARRAY.
type KDFDataParam struct {
	Type         uint
	WidthBits    uint   // iteration variable and DKM length: ulWidthInBits
	LittleEndian bool   // iteration variable and DKM length: bLittleEndian
	DKMMethod    uint   // DKM length: dkmLengthMethod
	Value        []byte // byte array
}

// maxGenericSecret is the longest generic secret in bytes: CloudHSM's 800.
const maxGenericSecret = 800

// Function is a bit set of what a mechanism can do (the CKF_* flags of
// CK_MECHANISM_INFO).
type Function uint

const (
	FnEncrypt Function = 1 << iota
	FnDecrypt
	FnDigest
	FnSign
	FnVerify
	FnGenerate
	FnGenerateKeyPair
	FnWrap
	FnUnwrap
	FnDerive
	FnEncapsulate // C_EncapsulateKey (PKCS#11 v3.2)
	FnDecapsulate // C_DecapsulateKey (PKCS#11 v3.2)
)

// MechanismInfo is what C_GetMechanismInfo reports, and the key the
// mechanism takes.
type MechanismInfo struct {
	MinKeySize, MaxKeySize uint // of KeyType keys: bits for RSA, EC and AES; bytes for generic secrets (as PKCS#11 says)
	Functions              Function
	FIPS                   bool // approved in FIPS mode
	// KeyType is the type of the keys the mechanism works with or makes
	// (those MinKeySize and MaxKeySize measure); Key says which of them an
	// operation takes. Digests have neither.
	KeyType ck.KeyType
	Key     KeyUse
}

// KeyUse is the key an operation of a mechanism takes.
type KeyUse uint8

const (
	NoKey     KeyUse = iota // digests, and key generation (which makes its key)
	SecretKey               // a secret key of KeyType
	// KeyPair: a half of a KeyType key pair, the public key to encrypt,
	// verify, wrap and encapsulate, the private key to decrypt, sign,
	// unwrap, derive and decapsulate.
	KeyPair
)

// pairHalf is the half of a key pair that does fn.
func pairHalf(fn Function) ck.ObjectClass {
	if fn&(FnEncrypt|FnVerify|FnWrap|FnEncapsulate) != 0 {
		return ck.CKO_PUBLIC_KEY
	}
	return ck.CKO_PRIVATE_KEY
}

// takes reports whether an operation of the mechanism for fn takes a key
// of class and type kt.
func (i MechanismInfo) takes(class ck.ObjectClass, kt ck.KeyType, fn Function) bool {
	switch i.Key {
	case SecretKey:
		return class == ck.CKO_SECRET_KEY && kt == i.KeyType
	case KeyPair:
		return class == pairHalf(fn) && kt == i.KeyType
	}
	return false
}

// CKFlags returns the CKF_* flags for the functions.
func (i MechanismInfo) CKFlags() ck.Flags {
	var f ck.Flags
	for bit, ckf := range map[Function]ck.Flags{
		FnEncrypt: ck.CKF_ENCRYPT, FnDecrypt: ck.CKF_DECRYPT, FnDigest: ck.CKF_DIGEST,
		FnSign: ck.CKF_SIGN, FnVerify: ck.CKF_VERIFY, FnGenerate: ck.CKF_GENERATE,
		FnGenerateKeyPair: ck.CKF_GENERATE_KEY_PAIR, FnWrap: ck.CKF_WRAP, FnUnwrap: ck.CKF_UNWRAP,
		FnDerive: ck.CKF_DERIVE, FnEncapsulate: ck.CKF_ENCAPSULATE, FnDecapsulate: ck.CKF_DECAPSULATE,
	} {
		if i.Functions&bit != 0 {
			f |= ckf
		}
	}
	f |= ck.CKF_HW // the mechanism is performed by the HSM, not the library
	return f
}

const (
	encDec  = FnEncrypt | FnDecrypt
	sigVer  = FnSign | FnVerify
	wrapUnw = FnWrap | FnUnwrap
)

// mechanisms is the device's mechanism table: what each mechanism does, for
// which key sizes, and with which key. FIPS mode is this table's FIPS column
// and nothing else; the PKCS#11 module's checks of a key at C_*Init are its
// key columns, as the node sends them.
var mechanisms = map[ck.MechanismType]MechanismInfo{
	ck.CKM_AES_KEY_GEN:      {128, 256, FnGenerate, true, ck.CKK_AES, NoKey},
	ck.CKM_AES_ECB:          {128, 256, encDec | wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_CBC:          {128, 256, encDec | wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_CBC_PAD:      {128, 256, encDec | wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_CTR:          {128, 256, encDec, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_GCM:          {128, 256, encDec | wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_CLOUDHSM_AES_GCM: {128, 256, encDec | wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_KEY_WRAP:     {128, 256, encDec | wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_KEY_WRAP_PAD: {128, 256, encDec | wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_CMAC:         {128, 256, sigVer, true, ck.CKK_AES, SecretKey},

	ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD:    {128, 256, wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD: {128, 256, wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD:  {128, 256, wrapUnw, true, ck.CKK_AES, SecretKey},
	ck.CKM_AES_CMAC_GENERAL:                {128, 256, sigVer, true, ck.CKK_AES, SecretKey},

	ck.CKM_GENERIC_SECRET_KEY_GEN: {1, maxGenericSecret, FnGenerate, true, ck.CKK_GENERIC_SECRET, NoKey},
	ck.CKM_SHA_1_HMAC:             {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA224_HMAC:            {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA256_HMAC:            {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA384_HMAC:            {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA512_HMAC:            {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA_1_HMAC_GENERAL:     {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA224_HMAC_GENERAL:    {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA256_HMAC_GENERAL:    {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA384_HMAC_GENERAL:    {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},
	ck.CKM_SHA512_HMAC_GENERAL:    {1, maxGenericSecret, sigVer, true, ck.CKK_GENERIC_SECRET, SecretKey},

	ck.CKM_SHA_1:  {Functions: FnDigest, FIPS: true},
	ck.CKM_SHA224: {Functions: FnDigest, FIPS: true},
	ck.CKM_SHA256: {Functions: FnDigest, FIPS: true},
	ck.CKM_SHA384: {Functions: FnDigest, FIPS: true},
	ck.CKM_SHA512: {Functions: FnDigest, FIPS: true},

	ck.CKM_RSA_PKCS_KEY_PAIR_GEN: {mech.RSAMinBits, mech.RSAMaxBits, FnGenerateKeyPair, true, ck.CKK_RSA, NoKey},
	ck.CKM_RSA_PKCS:              {mech.RSAMinBits, mech.RSAMaxBits, encDec | sigVer | wrapUnw, false, ck.CKK_RSA, KeyPair}, // v1.5 encryption is not approved
	ck.CKM_SHA1_RSA_PKCS:         {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA224_RSA_PKCS:       {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA256_RSA_PKCS:       {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA384_RSA_PKCS:       {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA512_RSA_PKCS:       {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_RSA_PKCS_PSS:          {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA1_RSA_PKCS_PSS:     {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA224_RSA_PKCS_PSS:   {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA256_RSA_PKCS_PSS:   {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA384_RSA_PKCS_PSS:   {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_SHA512_RSA_PKCS_PSS:   {mech.RSAMinBits, mech.RSAMaxBits, sigVer, true, ck.CKK_RSA, KeyPair},
	ck.CKM_RSA_PKCS_OAEP:         {mech.RSAMinBits, mech.RSAMaxBits, encDec | wrapUnw, true, ck.CKK_RSA, KeyPair},
	ck.CKM_RSA_AES_KEY_WRAP:      {mech.RSAMinBits, mech.RSAMaxBits, wrapUnw, true, ck.CKK_RSA, KeyPair},

	ck.CKM_EC_KEY_PAIR_GEN: {256, 521, FnGenerateKeyPair, true, ck.CKK_EC, NoKey},
	ck.CKM_ECDSA:           {256, 521, sigVer, true, ck.CKK_EC, KeyPair},
	ck.CKM_ECDSA_SHA1:      {256, 521, sigVer, true, ck.CKK_EC, KeyPair},
	ck.CKM_ECDSA_SHA224:    {256, 521, sigVer, true, ck.CKK_EC, KeyPair},
	ck.CKM_ECDSA_SHA256:    {256, 521, sigVer, true, ck.CKK_EC, KeyPair},
	ck.CKM_ECDSA_SHA384:    {256, 521, sigVer, true, ck.CKK_EC, KeyPair},
	ck.CKM_ECDSA_SHA512:    {256, 521, sigVer, true, ck.CKK_EC, KeyPair},
	ck.CKM_ECDH1_DERIVE:    {256, 521, FnDerive, true, ck.CKK_EC, KeyPair},

	ck.CKM_SP800_108_COUNTER_KDF: {1, maxGenericSecret, FnDerive, true, ck.CKK_GENERIC_SECRET, SecretKey},

	ck.CKM_EC_EDWARDS_KEY_PAIR_GEN: {255, 255, FnGenerateKeyPair, true, ck.CKK_EC_EDWARDS, NoKey},
	ck.CKM_EDDSA:                   {255, 255, sigVer, true, ck.CKK_EC_EDWARDS, KeyPair},

	// ML-DSA and ML-KEM (PKCS#11 v3.2): the key sizes are the
	// CKA_PARAMETER_SET values offered (CKP_ML_DSA_44..87, CKP_ML_KEM_768..1024).
	ck.CKM_ML_DSA_KEY_PAIR_GEN: {uint(ck.CKP_ML_DSA_44), uint(ck.CKP_ML_DSA_87), FnGenerateKeyPair, true, ck.CKK_ML_DSA, NoKey},
	ck.CKM_ML_DSA:              {uint(ck.CKP_ML_DSA_44), uint(ck.CKP_ML_DSA_87), sigVer, true, ck.CKK_ML_DSA, KeyPair},
	ck.CKM_ML_KEM_KEY_PAIR_GEN: {uint(ck.CKP_ML_KEM_768), uint(ck.CKP_ML_KEM_1024), FnGenerateKeyPair, true, ck.CKK_ML_KEM, NoKey},
	ck.CKM_ML_KEM:              {uint(ck.CKP_ML_KEM_768), uint(ck.CKP_ML_KEM_1024), FnEncapsulate | FnDecapsulate, true, ck.CKK_ML_KEM, KeyPair},
}

// Mechanisms lists the mechanisms the device offers, sorted.
func (d *Device) Mechanisms() []ck.MechanismType {
	var out []ck.MechanismType
	for m, info := range mechanisms {
		if !d.cfg.FIPS || info.FIPS {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// MechanismInfo describes one mechanism.
func (d *Device) MechanismInfo(m ck.MechanismType) (MechanismInfo, error) {
	info, ok := mechanisms[m]
	if !ok || (d.cfg.FIPS && !info.FIPS) {
		return MechanismInfo{}, &Error{Op: "mechanism info", Err: ErrMechanismInvalid}
	}
	return info, nil
}

// mechanismFor checks that m is offered for fn.
func (d *Device) mechanismFor(op string, m ck.MechanismType, fn Function) (MechanismInfo, error) {
	info, ok := mechanisms[m]
	switch {
	case !ok || info.Functions&fn == 0:
		return info, opErr(op, ErrMechanismInvalid, "%v", m)
	case d.cfg.FIPS && !info.FIPS:
		return info, opErr(op, ErrFIPSNotApproved, "%v", m)
	}
	return info, nil
}
