package main

/*
#include "pkcs11.h"
*/
import "C"

import (
	"unsafe"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cryptoki"
)

// PKCS#11 v3.2's C_EncapsulateKey and C_DecapsulateKey (CKM_ML_KEM), in
// the interface "PKCS 11" 3.2 (pkcs11_3_2.h, exports.c).

//export goEncapsulateKey
func goEncapsulateKey(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, pub C.CK_OBJECT_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG,
	pCt C.CK_BYTE_PTR, pCtLen C.CK_ULONG_PTR, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_EncapsulateKey")
	m := module()
	if m == nil {
		return notInit
	}
	mech, v := mechanism(pMech)
	if v != ck.CKR_OK {
		return rv(v)
	}
	tmpl, ok := template(pT, n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	out, query, ok := outBuf(pCt, pCtLen)
	if !ok || !query && ph == nil {
		return C.CKR_ARGUMENTS_BAD
	}
	oh, got, v := m.EncapsulateKey(bg, cryptoki.SessionHandle(h), mech, cryptoki.ObjectHandle(pub), tmpl, out, query)
	if v == ck.CKR_OK || v == ck.CKR_BUFFER_TOO_SMALL {
		*pCtLen = C.CK_ULONG(got)
	}
	if v == ck.CKR_OK && !query {
		*ph = C.CK_OBJECT_HANDLE(oh)
	}
	return rv(v)
}

//export goDecapsulateKey
func goDecapsulateKey(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, priv C.CK_OBJECT_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG,
	pCt C.CK_BYTE_PTR, ctLen C.CK_ULONG, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_DecapsulateKey")
	m := module()
	if m == nil {
		return notInit
	}
	mech, v := mechanism(pMech)
	if v != ck.CKR_OK {
		return rv(v)
	}
	tmpl, ok := template(pT, n)
	if !ok || ph == nil {
		return C.CKR_ARGUMENTS_BAD
	}
	ct, ok := goBytes(unsafe.Pointer(pCt), ctLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	oh, v := m.DecapsulateKey(bg, cryptoki.SessionHandle(h), mech, cryptoki.ObjectHandle(priv), tmpl, ct)
	if v == ck.CKR_OK {
		*ph = C.CK_OBJECT_HANDLE(oh)
	}
	return rv(v)
}
