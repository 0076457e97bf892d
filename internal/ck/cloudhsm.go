package ck

// AWS CloudHSM's vendor-defined values, from CloudHSM's published PKCS#11
// header (cloudhsm_pkcs11_vendor_defs.h), so that applications written for
// CloudHSM run unchanged.
const (
	// CKM_CLOUDHSM_AES_GCM is AES-GCM whose IV the HSM always generates and
	// prepends to the ciphertext (and expects prepended when decrypting).
	CKM_CLOUDHSM_AES_GCM = MechanismType(CKM_VENDOR_DEFINED | CKM_AES_GCM)
)

// vendorMechanismNames names the vendor-defined mechanisms above.
var vendorMechanismNames = map[MechanismType]string{
	CKM_CLOUDHSM_AES_GCM: "CKM_CLOUDHSM_AES_GCM",
}
