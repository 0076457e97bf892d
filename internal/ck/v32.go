package ck

// The types of PKCS#11 v3.2's ML-DSA (FIPS 204) and ML-KEM (FIPS 203)
// parameters. Their values (CKP_ML_*, CKH_*), like v3.2's key types,
// mechanisms, attributes and flags, are generated into zz_constants.go
// from cmd/libcoffer_pkcs11/pkcs11_3_2.h.
type (
	// ParameterSet is a CK_ML_DSA_PARAMETER_SET_TYPE or
	// CK_ML_KEM_PARAMETER_SET_TYPE, the value of CKA_PARAMETER_SET.
	ParameterSet uint

	// HedgeType is CK_HEDGE_TYPE, the hedgeVariant of
	// CK_SIGN_ADDITIONAL_CONTEXT: whether an ML-DSA signature mixes in fresh
	// randomness.
	HedgeType uint
)
