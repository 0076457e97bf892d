package ck

// PKCS#11 v3.2 values for ML-DSA (FIPS 204) and ML-KEM (FIPS 203), from
// OASIS's v3.2 pkcs11t.h. The generated zz_constants.go follows p11-kit's
// header, which predates v3.2; these are kept apart until it has them.
const (
	CKK_ML_KEM = KeyType(0x49)
	CKK_ML_DSA = KeyType(0x4a)

	CKM_ML_KEM_KEY_PAIR_GEN = MechanismType(0x0f)
	CKM_ML_KEM              = MechanismType(0x17)
	CKM_ML_DSA_KEY_PAIR_GEN = MechanismType(0x1c)
	CKM_ML_DSA              = MechanismType(0x1d)

	CKA_PARAMETER_SET = AttributeType(0x61d)
	CKA_ENCAPSULATE   = AttributeType(0x633)
	CKA_DECAPSULATE   = AttributeType(0x634)
	CKA_SEED          = AttributeType(0x637)

	// CKF_ENCAPSULATE and CKF_DECAPSULATE are CK_MECHANISM_INFO flags.
	CKF_ENCAPSULATE = Flags(0x10000000)
	CKF_DECAPSULATE = Flags(0x20000000)
)

// ParameterSet is a CK_ML_DSA_PARAMETER_SET_TYPE or
// CK_ML_KEM_PARAMETER_SET_TYPE, the value of CKA_PARAMETER_SET.
type ParameterSet uint

const (
	CKP_ML_DSA_44 = ParameterSet(1)
	CKP_ML_DSA_65 = ParameterSet(2)
	CKP_ML_DSA_87 = ParameterSet(3)

	CKP_ML_KEM_512  = ParameterSet(1)
	CKP_ML_KEM_768  = ParameterSet(2)
	CKP_ML_KEM_1024 = ParameterSet(3)
)

// HedgeType is CK_HEDGE_TYPE, the hedgeVariant of
// CK_SIGN_ADDITIONAL_CONTEXT: whether an ML-DSA signature mixes in fresh
// randomness.
type HedgeType uint

const (
	CKH_HEDGE_PREFERRED        = HedgeType(0)
	CKH_HEDGE_REQUIRED         = HedgeType(1)
	CKH_DETERMINISTIC_REQUIRED = HedgeType(2)
)

var v32MechanismNames = map[MechanismType]string{
	CKM_ML_KEM_KEY_PAIR_GEN: "CKM_ML_KEM_KEY_PAIR_GEN",
	CKM_ML_KEM:              "CKM_ML_KEM",
	CKM_ML_DSA_KEY_PAIR_GEN: "CKM_ML_DSA_KEY_PAIR_GEN",
	CKM_ML_DSA:              "CKM_ML_DSA",
}

var v32AttributeNames = map[AttributeType]string{
	CKA_PARAMETER_SET: "CKA_PARAMETER_SET",
	CKA_ENCAPSULATE:   "CKA_ENCAPSULATE",
	CKA_DECAPSULATE:   "CKA_DECAPSULATE",
	CKA_SEED:          "CKA_SEED",
}
