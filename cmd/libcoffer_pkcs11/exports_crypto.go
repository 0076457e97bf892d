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

// The cryptographic functions: thin conversions to cryptoki. The hot path
// (C_Sign, C_Encrypt, ...) views the caller's buffers in place and copies
// nothing here.

func opInit(h C.CK_SESSION_HANDLE, kind cryptoki.OpKind, pMech C.CK_MECHANISM_PTR, key C.CK_OBJECT_HANDLE) C.CK_RV {
	m := module()
	if m == nil {
		return notInit
	}
	mech, v := mechanism(pMech)
	if v != ck.CKR_OK {
		return rv(v)
	}
	return rv(m.Init(bg, cryptoki.SessionHandle(h), kind, mech, cryptoki.ObjectHandle(key)))
}

// single is C_Encrypt, C_Decrypt, C_Sign and C_Digest; update with out is
// C_EncryptUpdate and C_DecryptUpdate.
func single(h C.CK_SESSION_HANDLE, kind cryptoki.OpKind, update bool, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) C.CK_RV {
	m := module()
	if m == nil {
		return notInit
	}
	in, ok1 := goBytes(unsafe.Pointer(pIn), inLen)
	out, query, ok2 := outBuf(pOut, pOutLen)
	if !ok1 || !ok2 {
		return C.CKR_ARGUMENTS_BAD
	}
	var (
		n int
		v ck.RV
	)
	if update {
		n, v = m.Update(bg, cryptoki.SessionHandle(h), kind, in, out, query)
	} else {
		n, v = m.Single(bg, cryptoki.SessionHandle(h), kind, in, out, query)
	}
	if v == ck.CKR_OK || v == ck.CKR_BUFFER_TOO_SMALL {
		*pOutLen = C.CK_ULONG(n)
	}
	return rv(v)
}

// feed is C_SignUpdate, C_VerifyUpdate and C_DigestUpdate.
func feed(h C.CK_SESSION_HANDLE, kind cryptoki.OpKind, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG) C.CK_RV {
	m := module()
	if m == nil {
		return notInit
	}
	in, ok := goBytes(unsafe.Pointer(pIn), inLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	_, v := m.Update(bg, cryptoki.SessionHandle(h), kind, in, nil, false)
	return rv(v)
}

func final(h C.CK_SESSION_HANDLE, kind cryptoki.OpKind, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) C.CK_RV {
	m := module()
	if m == nil {
		return notInit
	}
	out, query, ok := outBuf(pOut, pOutLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	n, v := m.Final(bg, cryptoki.SessionHandle(h), kind, out, query)
	if v == ck.CKR_OK || v == ck.CKR_BUFFER_TOO_SMALL {
		*pOutLen = C.CK_ULONG(n)
	}
	return rv(v)
}

func goEncryptInit(h C.CK_SESSION_HANDLE, p C.CK_MECHANISM_PTR, key C.CK_OBJECT_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_EncryptInit")
	return opInit(h, cryptoki.OpEncrypt, p, key)
}

func goEncrypt(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_Encrypt")
	return single(h, cryptoki.OpEncrypt, false, pIn, inLen, pOut, pOutLen)
}

func goEncryptUpdate(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_EncryptUpdate")
	return single(h, cryptoki.OpEncrypt, true, pIn, inLen, pOut, pOutLen)
}

func goEncryptFinal(h C.CK_SESSION_HANDLE, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_EncryptFinal")
	return final(h, cryptoki.OpEncrypt, pOut, pOutLen)
}

func goDecryptInit(h C.CK_SESSION_HANDLE, p C.CK_MECHANISM_PTR, key C.CK_OBJECT_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_DecryptInit")
	return opInit(h, cryptoki.OpDecrypt, p, key)
}

func goDecrypt(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_Decrypt")
	return single(h, cryptoki.OpDecrypt, false, pIn, inLen, pOut, pOutLen)
}

func goDecryptUpdate(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_DecryptUpdate")
	return single(h, cryptoki.OpDecrypt, true, pIn, inLen, pOut, pOutLen)
}

func goDecryptFinal(h C.CK_SESSION_HANDLE, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_DecryptFinal")
	return final(h, cryptoki.OpDecrypt, pOut, pOutLen)
}

func goDigestInit(h C.CK_SESSION_HANDLE, p C.CK_MECHANISM_PTR) (r C.CK_RV) {
	defer guard(&r, "C_DigestInit")
	return opInit(h, cryptoki.OpDigest, p, 0)
}

func goDigest(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_Digest")
	return single(h, cryptoki.OpDigest, false, pIn, inLen, pOut, pOutLen)
}

func goDigestUpdate(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_DigestUpdate")
	return feed(h, cryptoki.OpDigest, pIn, inLen)
}

func goDigestFinal(h C.CK_SESSION_HANDLE, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_DigestFinal")
	return final(h, cryptoki.OpDigest, pOut, pOutLen)
}

func goSignInit(h C.CK_SESSION_HANDLE, p C.CK_MECHANISM_PTR, key C.CK_OBJECT_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_SignInit")
	return opInit(h, cryptoki.OpSign, p, key)
}

func goSign(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_Sign")
	return single(h, cryptoki.OpSign, false, pIn, inLen, pOut, pOutLen)
}

func goSignUpdate(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_SignUpdate")
	return feed(h, cryptoki.OpSign, pIn, inLen)
}

func goSignFinal(h C.CK_SESSION_HANDLE, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_SignFinal")
	return final(h, cryptoki.OpSign, pOut, pOutLen)
}

func goVerifyInit(h C.CK_SESSION_HANDLE, p C.CK_MECHANISM_PTR, key C.CK_OBJECT_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_VerifyInit")
	return opInit(h, cryptoki.OpVerify, p, key)
}

func goVerify(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG, pSig C.CK_BYTE_PTR, sigLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_Verify")
	m := module()
	if m == nil {
		return notInit
	}
	in, ok1 := goBytes(unsafe.Pointer(pIn), inLen)
	sig, ok2 := goBytes(unsafe.Pointer(pSig), sigLen)
	if !ok1 || !ok2 {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.Verify(bg, cryptoki.SessionHandle(h), in, sig))
}

func goVerifyUpdate(h C.CK_SESSION_HANDLE, pIn C.CK_BYTE_PTR, inLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_VerifyUpdate")
	return feed(h, cryptoki.OpVerify, pIn, inLen)
}

func goVerifyFinal(h C.CK_SESSION_HANDLE, pSig C.CK_BYTE_PTR, sigLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_VerifyFinal")
	m := module()
	if m == nil {
		return notInit
	}
	sig, ok := goBytes(unsafe.Pointer(pSig), sigLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.VerifyFinal(bg, cryptoki.SessionHandle(h), sig))
}

func goGenerateKey(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GenerateKey")
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
	oh, v := m.GenerateKey(bg, cryptoki.SessionHandle(h), mech, tmpl)
	if v == ck.CKR_OK {
		*ph = C.CK_OBJECT_HANDLE(oh)
	}
	return rv(v)
}

func goGenerateKeyPair(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, pPub C.CK_ATTRIBUTE_PTR, nPub C.CK_ULONG,
	pPriv C.CK_ATTRIBUTE_PTR, nPriv C.CK_ULONG, phPub, phPriv C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GenerateKeyPair")
	m := module()
	if m == nil {
		return notInit
	}
	mech, v := mechanism(pMech)
	if v != ck.CKR_OK {
		return rv(v)
	}
	pub, ok1 := template(pPub, nPub)
	priv, ok2 := template(pPriv, nPriv)
	if !ok1 || !ok2 || phPub == nil || phPriv == nil {
		return C.CKR_ARGUMENTS_BAD
	}
	hPub, hPriv, v := m.GenerateKeyPair(bg, cryptoki.SessionHandle(h), mech, pub, priv)
	if v == ck.CKR_OK {
		*phPub, *phPriv = C.CK_OBJECT_HANDLE(hPub), C.CK_OBJECT_HANDLE(hPriv)
	}
	return rv(v)
}

func goWrapKey(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, wrapping, key C.CK_OBJECT_HANDLE, pOut C.CK_BYTE_PTR, pOutLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_WrapKey")
	m := module()
	if m == nil {
		return notInit
	}
	mech, v := mechanism(pMech)
	if v != ck.CKR_OK {
		return rv(v)
	}
	out, query, ok := outBuf(pOut, pOutLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	n, v := m.WrapKey(bg, cryptoki.SessionHandle(h), mech, cryptoki.ObjectHandle(wrapping), cryptoki.ObjectHandle(key), out, query)
	if v == ck.CKR_OK || v == ck.CKR_BUFFER_TOO_SMALL {
		*pOutLen = C.CK_ULONG(n)
	}
	return rv(v)
}

func goUnwrapKey(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, unwrapping C.CK_OBJECT_HANDLE, pWrapped C.CK_BYTE_PTR, wrappedLen C.CK_ULONG,
	pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_UnwrapKey")
	m := module()
	if m == nil {
		return notInit
	}
	mech, v := mechanism(pMech)
	if v != ck.CKR_OK {
		return rv(v)
	}
	wrapped, ok1 := goBytes(unsafe.Pointer(pWrapped), wrappedLen)
	tmpl, ok2 := template(pT, n)
	if !ok1 || !ok2 || ph == nil {
		return C.CKR_ARGUMENTS_BAD
	}
	oh, v := m.UnwrapKey(bg, cryptoki.SessionHandle(h), mech, cryptoki.ObjectHandle(unwrapping), wrapped, tmpl)
	if v == ck.CKR_OK {
		*ph = C.CK_OBJECT_HANDLE(oh)
	}
	return rv(v)
}

func goDeriveKey(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, base C.CK_OBJECT_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_DeriveKey")
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
	oh, v := m.DeriveKey(bg, cryptoki.SessionHandle(h), mech, cryptoki.ObjectHandle(base), tmpl)
	if v == ck.CKR_OK {
		*ph = C.CK_OBJECT_HANDLE(oh)
	}
	return rv(v)
}

//export goSeedRandom
func goSeedRandom(h C.CK_SESSION_HANDLE, pSeed C.CK_BYTE_PTR, seedLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_SeedRandom")
	m := module()
	if m == nil {
		return notInit
	}
	if _, ok := goBytes(unsafe.Pointer(pSeed), seedLen); !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.SeedRandom(cryptoki.SessionHandle(h)))
}

func goGenerateRandom(h C.CK_SESSION_HANDLE, pOut C.CK_BYTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_GenerateRandom")
	m := module()
	if m == nil {
		return notInit
	}
	out, ok := goBytes(unsafe.Pointer(pOut), n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.GenerateRandom(bg, cryptoki.SessionHandle(h), out))
}

// goSessionCancel is C_SessionCancel.
//
//export goSessionCancel
func goSessionCancel(h C.CK_SESSION_HANDLE, flags C.CK_FLAGS) (r C.CK_RV) {
	defer guard(&r, "C_SessionCancel")
	m := module()
	if m == nil {
		return notInit
	}
	return rv(m.SessionCancel(bg, cryptoki.SessionHandle(h), ck.Flags(flags)))
}
