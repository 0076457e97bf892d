package ck

// AWS CloudHSM's vendor-defined values, from CloudHSM's published PKCS#11
// header (cloudhsm_pkcs11_vendor_defs.h), so that applications written for
// CloudHSM run unchanged.
const (
	// CKM_CLOUDHSM_AES_GCM is AES-GCM whose IV the HSM always generates and
	// prepends to the ciphertext (and expects prepended when decrypting).
	CKM_CLOUDHSM_AES_GCM = MechanismType(CKM_VENDOR_DEFINED | CKM_AES_GCM)

	// CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD is RFC 3394 AES key wrap of a key
	// whose length is a multiple of 8 bytes, IV absent or A6A6A6A6A6A6A6A6.
	CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD = MechanismType(CKM_VENDOR_DEFINED | CKM_AES_KEY_WRAP)
	// CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD is RFC 3394 AES key wrap of the
	// key padded as PKCS #5 pads to 8-byte blocks (1 to 8 bytes added), IV
	// absent or A6A6A6A6A6A6A6A6.
	CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD = MechanismType(CKM_VENDOR_DEFINED | CKM_AES_KEY_WRAP_PAD)
	// CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD is RFC 5649 AES key wrap with
	// padding (zeros after the key, its length in the IV); no IV is given.
	CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD = MechanismType(CKM_VENDOR_DEFINED | 0x0000216F)
)

// vendorMechanismNames names the vendor-defined mechanisms above, and the
// standard ones of v30kdf.go.
var vendorMechanismNames = map[MechanismType]string{
	CKM_SP800_108_COUNTER_KDF: "CKM_SP800_108_COUNTER_KDF",

	CKM_CLOUDHSM_AES_GCM:                "CKM_CLOUDHSM_AES_GCM",
	CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD:    "CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD",
	CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD: "CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD",
	CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD:  "CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD",
}
