// Command libcoffer_pkcs11 is the Coffer PKCS#11 library
// (bin/libcoffer_pkcs11.so, built with -buildmode=c-shared). It is the only
// cgo in the tree and only a boundary: exports.c holds the function tables
// and forwards each C_* to a Go export here, convert.go turns C structures
// into internal/cryptoki's types and back, and every export recovers panics
// (rv.go). The PKCS#11 semantics live in internal/cryptoki.
//
// It imports internal/cryptoki, internal/client and internal/ck; never the
// device, node, store or control plane (internal/layers_test.go checks).
package main

/*
#cgo pkg-config: nss
#cgo CFLAGS: -Werror=incompatible-pointer-types -Wall
#cgo LDFLAGS: -Wl,-Bsymbolic-functions
#include "pkcs11.h"
*/
import "C"

import (
	"context"
	"errors"
	"unsafe"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cryptoki"
)

func main() {}

var bg = context.Background()

const notInit = C.CKR_CRYPTOKI_NOT_INITIALIZED

//export goInitialize
func goInitialize(args C.CK_VOID_PTR) (r C.CK_RV) {
	defer guard(&r, "C_Initialize")
	if args != nil {
		a := (*C.CK_C_INITIALIZE_ARGS)(args)
		if a.LibraryParameters != nil {
			return C.CKR_ARGUMENTS_BAD
		}
		fns := 0
		for _, f := range []unsafe.Pointer{unsafe.Pointer(a.CreateMutex), unsafe.Pointer(a.DestroyMutex), unsafe.Pointer(a.LockMutex), unsafe.Pointer(a.UnlockMutex)} {
			if f != nil {
				fns++
			}
		}
		// Mutex functions without CKF_OS_LOCKING_OK (p11-kit passes them)
		// ask for thread safety; the library provides it with its own
		// locks, which need nothing of the application's threads.
		switch {
		case fns != 0 && fns != 4:
			return C.CKR_ARGUMENTS_BAD
		}
		// CKF_LIBRARY_CANT_CREATE_OS_THREADS (p11-kit, hence GnuTLS, sets
		// it) is accepted: Go's runtime started its threads when the
		// library was loaded, before C_Initialize could be asked; refusing
		// would only make the library unusable there.
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if err := initialize(bg); err != nil {
		if errors.Is(err, errAlreadyInitialized) {
			return C.CKR_CRYPTOKI_ALREADY_INITIALIZED
		}
		logger().Error("C_Initialize failed", "err", err)
		return C.CKR_FUNCTION_FAILED
	}
	return C.CKR_OK
}

//export goFinalize
func goFinalize(reserved C.CK_VOID_PTR) (r C.CK_RV) {
	defer guard(&r, "C_Finalize")
	if reserved != nil {
		return C.CKR_ARGUMENTS_BAD
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	finalize(bg)
	return C.CKR_OK
}

//export goGetInfo
func goGetInfo(p C.CK_INFO_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GetInfo")
	m := module()
	switch {
	case m == nil:
		return notInit
	case p == nil:
		return C.CKR_ARGUMENTS_BAD
	}
	fillInfo(p, m.Info())
	return C.CKR_OK
}

// ulongs answers the two-call convention for a list of CK_ULONGs.
func ulongs[T ~uint](list []T, p *C.CK_ULONG, pCount C.CK_ULONG_PTR) C.CK_RV {
	if pCount == nil {
		return C.CKR_ARGUMENTS_BAD
	}
	n := C.CK_ULONG(len(list))
	if p == nil {
		*pCount = n
		return C.CKR_OK
	}
	if *pCount < n {
		*pCount = n
		return C.CKR_BUFFER_TOO_SMALL
	}
	out := unsafe.Slice(p, len(list))
	for i, v := range list {
		out[i] = C.CK_ULONG(v)
	}
	*pCount = n
	return C.CKR_OK
}

//export goGetSlotList
func goGetSlotList(present C.CK_BBOOL, p C.CK_SLOT_ID_PTR, pCount C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GetSlotList")
	m := module()
	if m == nil {
		return notInit
	}
	return ulongs(m.Slots(), (*C.CK_ULONG)(p), pCount)
}

//export goGetSlotInfo
func goGetSlotInfo(id C.CK_SLOT_ID, p C.CK_SLOT_INFO_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GetSlotInfo")
	m := module()
	switch {
	case m == nil:
		return notInit
	case p == nil:
		return C.CKR_ARGUMENTS_BAD
	}
	info, v := m.SlotInfo(cryptoki.SlotID(id))
	if v == ck.CKR_OK {
		fillSlotInfo(p, info)
	}
	return rv(v)
}

//export goGetTokenInfo
func goGetTokenInfo(id C.CK_SLOT_ID, p C.CK_TOKEN_INFO_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GetTokenInfo")
	m := module()
	switch {
	case m == nil:
		return notInit
	case p == nil:
		return C.CKR_ARGUMENTS_BAD
	}
	info, v := m.TokenInfo(cryptoki.SlotID(id))
	if v == ck.CKR_OK {
		fillTokenInfo(p, info)
	}
	return rv(v)
}

//export goGetMechanismList
func goGetMechanismList(id C.CK_SLOT_ID, p C.CK_MECHANISM_TYPE_PTR, pCount C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GetMechanismList")
	m := module()
	if m == nil {
		return notInit
	}
	list, v := m.MechanismList(bg, cryptoki.SlotID(id))
	if v != ck.CKR_OK {
		return rv(v)
	}
	return ulongs(list, (*C.CK_ULONG)(p), pCount)
}

//export goGetMechanismInfo
func goGetMechanismInfo(id C.CK_SLOT_ID, t C.CK_MECHANISM_TYPE, p C.CK_MECHANISM_INFO_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GetMechanismInfo")
	m := module()
	switch {
	case m == nil:
		return notInit
	case p == nil:
		return C.CKR_ARGUMENTS_BAD
	}
	mi, v := m.MechanismInfo(bg, cryptoki.SlotID(id), ck.MechanismType(t))
	if v == ck.CKR_OK {
		*p = C.CK_MECHANISM_INFO{ulMinKeySize: C.CK_ULONG(mi.MinKeySize), ulMaxKeySize: C.CK_ULONG(mi.MaxKeySize), flags: C.CK_FLAGS(mi.Flags)}
	}
	return rv(v)
}

//export goSetPIN
func goSetPIN(h C.CK_SESSION_HANDLE, pOld C.CK_UTF8CHAR_PTR, oldLen C.CK_ULONG, pNew C.CK_UTF8CHAR_PTR, newLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_SetPIN")
	m := module()
	if m == nil {
		return notInit
	}
	oldPIN, ok1 := goBytes(unsafe.Pointer(pOld), oldLen)
	newPIN, ok2 := goBytes(unsafe.Pointer(pNew), newLen)
	if !ok1 || !ok2 {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.SetPIN(bg, cryptoki.SessionHandle(h), oldPIN, newPIN))
}

//export goOpenSession
func goOpenSession(id C.CK_SLOT_ID, flags C.CK_FLAGS, ph C.CK_SESSION_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_OpenSession")
	m := module()
	switch {
	case m == nil:
		return notInit
	case ph == nil:
		return C.CKR_ARGUMENTS_BAD
	}
	h, v := m.OpenSession(cryptoki.SlotID(id), ck.Flags(flags))
	if v == ck.CKR_OK {
		*ph = C.CK_SESSION_HANDLE(h)
	}
	return rv(v)
}

//export goCloseSession
func goCloseSession(h C.CK_SESSION_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_CloseSession")
	m := module()
	if m == nil {
		return notInit
	}
	return rv(m.CloseSession(bg, cryptoki.SessionHandle(h)))
}

//export goCloseAllSessions
func goCloseAllSessions(id C.CK_SLOT_ID) (r C.CK_RV) {
	defer guard(&r, "C_CloseAllSessions")
	m := module()
	if m == nil {
		return notInit
	}
	return rv(m.CloseAllSessions(bg, cryptoki.SlotID(id)))
}

//export goGetSessionInfo
func goGetSessionInfo(h C.CK_SESSION_HANDLE, p C.CK_SESSION_INFO_PTR) (r C.CK_RV) {
	defer guard(&r, "C_GetSessionInfo")
	m := module()
	switch {
	case m == nil:
		return notInit
	case p == nil:
		return C.CKR_ARGUMENTS_BAD
	}
	si, v := m.SessionInfo(cryptoki.SessionHandle(h))
	if v == ck.CKR_OK {
		*p = C.CK_SESSION_INFO{slotID: C.CK_SLOT_ID(si.Slot), state: C.CK_STATE(si.State), flags: C.CK_FLAGS(si.Flags)}
	}
	return rv(v)
}

//export goLogin
func goLogin(h C.CK_SESSION_HANDLE, ut C.CK_USER_TYPE, pPin C.CK_UTF8CHAR_PTR, pinLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_Login")
	m := module()
	if m == nil {
		return notInit
	}
	pin, ok := goBytes(unsafe.Pointer(pPin), pinLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.Login(bg, cryptoki.SessionHandle(h), ck.UserType(ut), pin))
}

//export goLoginUser
func goLoginUser(h C.CK_SESSION_HANDLE, ut C.CK_USER_TYPE, pPin C.CK_CHAR_PTR, pinLen C.CK_ULONG, pUser C.CK_UTF8CHAR_PTR, userLen C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_LoginUser")
	m := module()
	if m == nil {
		return notInit
	}
	pin, ok1 := goBytes(unsafe.Pointer(pPin), pinLen)
	user, ok2 := goBytes(unsafe.Pointer(pUser), userLen)
	if !ok1 || !ok2 {
		return C.CKR_ARGUMENTS_BAD
	}
	full := make([]byte, 0, len(user)+1+len(pin))
	full = append(append(append(full, user...), ':'), pin...)
	defer clear(full)
	return rv(m.Login(bg, cryptoki.SessionHandle(h), ck.UserType(ut), full))
}

//export goLogout
func goLogout(h C.CK_SESSION_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_Logout")
	m := module()
	if m == nil {
		return notInit
	}
	return rv(m.Logout(bg, cryptoki.SessionHandle(h)))
}

//export goCreateObject
func goCreateObject(h C.CK_SESSION_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_CreateObject")
	m := module()
	if m == nil {
		return notInit
	}
	tmpl, ok := template(pT, n)
	if !ok || ph == nil {
		return C.CKR_ARGUMENTS_BAD
	}
	oh, v := m.CreateObject(bg, cryptoki.SessionHandle(h), tmpl)
	if v == ck.CKR_OK {
		*ph = C.CK_OBJECT_HANDLE(oh)
	}
	return rv(v)
}

//export goCopyObject
func goCopyObject(h C.CK_SESSION_HANDLE, oh C.CK_OBJECT_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r, "C_CopyObject")
	m := module()
	if m == nil {
		return notInit
	}
	tmpl, ok := template(pT, n)
	if !ok || ph == nil {
		return C.CKR_ARGUMENTS_BAD
	}
	nh, v := m.CopyObject(bg, cryptoki.SessionHandle(h), cryptoki.ObjectHandle(oh), tmpl)
	if v == ck.CKR_OK {
		*ph = C.CK_OBJECT_HANDLE(nh)
	}
	return rv(v)
}

//export goDestroyObject
func goDestroyObject(h C.CK_SESSION_HANDLE, oh C.CK_OBJECT_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_DestroyObject")
	m := module()
	if m == nil {
		return notInit
	}
	return rv(m.DestroyObject(bg, cryptoki.SessionHandle(h), cryptoki.ObjectHandle(oh)))
}

//export goGetAttributeValue
func goGetAttributeValue(h C.CK_SESSION_HANDLE, oh C.CK_OBJECT_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_GetAttributeValue")
	m := module()
	if m == nil {
		return notInit
	}
	if pT == nil && n > 0 {
		return C.CKR_ARGUMENTS_BAD
	}
	cattrs := unsafe.Slice(pT, int(n))
	reqs := make([]cryptoki.AttributeRequest, n)
	for i := range cattrs {
		reqs[i].Type = ck.AttributeType(cattrs[i]._type)
		if cattrs[i].pValue == nil {
			reqs[i].Query = true
		} else {
			reqs[i].Buf = unsafe.Slice((*byte)(cattrs[i].pValue), int(cattrs[i].ulValueLen))
		}
	}
	v := m.GetAttributeValue(bg, cryptoki.SessionHandle(h), cryptoki.ObjectHandle(oh), reqs)
	switch v {
	case ck.CKR_OK, ck.CKR_ATTRIBUTE_SENSITIVE, ck.CKR_ATTRIBUTE_TYPE_INVALID, ck.CKR_BUFFER_TOO_SMALL:
		for i := range cattrs {
			cattrs[i].ulValueLen = C.CK_ULONG(reqs[i].Len)
		}
	}
	return rv(v)
}

//export goSetAttributeValue
func goSetAttributeValue(h C.CK_SESSION_HANDLE, oh C.CK_OBJECT_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_SetAttributeValue")
	m := module()
	if m == nil {
		return notInit
	}
	tmpl, ok := template(pT, n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.SetAttributeValue(bg, cryptoki.SessionHandle(h), cryptoki.ObjectHandle(oh), tmpl))
}

//export goFindObjectsInit
func goFindObjectsInit(h C.CK_SESSION_HANDLE, pT C.CK_ATTRIBUTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r, "C_FindObjectsInit")
	m := module()
	if m == nil {
		return notInit
	}
	tmpl, ok := template(pT, n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rv(m.FindObjectsInit(bg, cryptoki.SessionHandle(h), tmpl))
}

//export goFindObjects
func goFindObjects(h C.CK_SESSION_HANDLE, p C.CK_OBJECT_HANDLE_PTR, max C.CK_ULONG, pCount C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r, "C_FindObjects")
	m := module()
	switch {
	case m == nil:
		return notInit
	case pCount == nil || (p == nil && max > 0):
		return C.CKR_ARGUMENTS_BAD
	}
	out := unsafe.Slice((*cryptoki.ObjectHandle)(unsafe.Pointer(p)), int(max))
	n, v := m.FindObjects(cryptoki.SessionHandle(h), out)
	*pCount = C.CK_ULONG(n)
	return rv(v)
}

//export goFindObjectsFinal
func goFindObjectsFinal(h C.CK_SESSION_HANDLE) (r C.CK_RV) {
	defer guard(&r, "C_FindObjectsFinal")
	m := module()
	if m == nil {
		return notInit
	}
	return rv(m.FindObjectsFinal(cryptoki.SessionHandle(h)))
}
