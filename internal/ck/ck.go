// Package ck holds the PKCS#11 v3.0 constants Coffer speaks: attribute,
// mechanism, object class, key type, user type and return-value codes, with the
// values of the standard's header (generated from p11-kit's pkcs11.h by
// internal/gen). Every layer that speaks PKCS#11 — the device, the wire, the
// PKCS#11 module, the CLI — uses these names.
//
// Package ck imports nothing from Coffer and nothing but fmt from the standard
// library.
package ck

//go:generate go run ./internal/gen -o zz_constants.go

import "fmt"

// Types of the constant families. On the platforms Coffer supports CK_ULONG is
// 64 bits wide, like Go's uint.
type (
	AttributeType   uint
	MechanismType   uint
	RV              uint
	ObjectClass     uint
	KeyType         uint
	UserType        uint
	MGF             uint
	KDF             uint
	Source          uint
	State           uint
	CertificateType uint
	Flags           uint
)

func (v RV) String() string {
	if n, ok := rVNames[v]; ok {
		return n
	}
	return fmt.Sprintf("CKR_0x%X", uint(v))
}

func (m MechanismType) String() string {
	if n, ok := mechanismTypeNames[m]; ok {
		return n
	}
	if n, ok := vendorMechanismNames[m]; ok {
		return n
	}
	if n, ok := v32MechanismNames[m]; ok {
		return n
	}
	return fmt.Sprintf("CKM_0x%X", uint(m))
}

func (a AttributeType) String() string {
	if n, ok := attributeTypeNames[a]; ok {
		return n
	}
	if n, ok := v32AttributeNames[a]; ok {
		return n
	}
	return fmt.Sprintf("CKA_0x%X", uint(a))
}
