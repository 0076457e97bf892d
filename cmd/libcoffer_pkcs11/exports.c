// The C side of the Coffer PKCS#11 library: the function tables, the
// interfaces of PKCS#11 v3.0, and one forward per C_* function to its Go
// export (exports.go), or, for the calls that may wait for an HSM, to the
// call queue (call.h). The types and prototypes are those of NSS's PKCS#11
// v3.0 header (Debian libnss3-dev), so the compiler checks every C_* here
// against the standard's prototype.
//
// Fork: Go's runtime does not survive fork without exec (its threads stay
// in the parent; a call into it from a child hangs), so a forked child never
// enters this copy's Go code again. Every function answers
// CKR_CRYPTOKI_NOT_INITIALIZED in the child (pthread_atfork handler) until
// the child calls C_Initialize, which loads a fresh copy of this library
// from an in-memory file (memfd: a new inode, so the dynamic loader maps a
// second image with its own Go runtime, started in the child) and from then
// on forwards every C_* of this image to that copy (FWD). The copy is made
// in the parent on the first fork after C_Initialize (atfork prepare, one
// copy of the file shared by all children) or, failing that, in the child.
// The application keeps the function list it got before the fork; its
// handles from the parent are meaningless in the child, as PKCS#11 says.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include "pkcs11.h"
#include "pkcs11_3_2.h"
#include "_cgo_export.h"
#include "call.h"

static volatile int live;   // 1 from a successful C_Initialize to C_Finalize, in this process
static volatile int forked; // set in a child after fork: this image's Go runtime is gone
static int self_fd = -1;    // this library's file, opened at load
static int copy_fd = -1;    // a memfd holding a copy of it, made for children
static int copy_loaded;     // copy_fd is already mapped in this process
static CK_FUNCTION_LIST_3_0_PTR fwd; // the copy's functions, in a child that initialized
static CK_FUNCTION_LIST_3_2_PTR fwd32; // the same list, with its v3.2 functions

#define LIVE do { if (!live) return CKR_CRYPTOKI_NOT_INITIALIZED; } while (0)
#define FWD(name, ...) do { if (fwd) return fwd->name(__VA_ARGS__); } while (0)
#define FWD32(name, ...) do { if (fwd32) return fwd32->name(__VA_ARGS__); } while (0)

extern CK_FUNCTION_LIST coffer_functions;
extern CK_FUNCTION_LIST_3_0 coffer_functions_3_0;
extern CK_FUNCTION_LIST_3_2 coffer_functions_3_2;

// coffer_copy returns a sealed memfd holding this library's file, or -1.
static int coffer_copy(void) {
	struct stat st;
	if (self_fd < 0 || fstat(self_fd, &st) != 0) return -1;
	int fd = memfd_create("libcoffer_pkcs11.so", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) return -1;
	off_t off = 0;
	while (off < st.st_size) {
		ssize_t n = sendfile(fd, self_fd, &off, (size_t)(st.st_size - off));
		if (n <= 0) {
			close(fd);
			return -1;
		}
	}
	fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	return fd;
}

static void coffer_atfork_prepare(void) {
	// A copy already mapped here keeps its descriptor open: the loader
	// knows it by the name /proc/self/fd/N, which must not be reused.
	if ((live || fwd != NULL) && (copy_fd < 0 || copy_loaded)) {
		copy_fd = coffer_copy();
		copy_loaded = 0;
	}
}

static void coffer_atfork_child(void) {
	live = 0;
	forked = 1;
	fwd = NULL; // a copy loaded by the parent lost its runtime too
	fwd32 = NULL;
}

// coffer_load runs when the library is mapped. A copy loaded in a child
// (named /proc/self/fd/N) is only ever called through the image the
// application loaded, which handles forks for it, so it registers nothing.
__attribute__((constructor)) static void coffer_load(void) {
	Dl_info info;
	if (!dladdr((void *)coffer_load, &info) || info.dli_fname == NULL) return;
	if (strncmp(info.dli_fname, "/proc/self/fd/", 14) == 0) return;
	self_fd = open(info.dli_fname, O_RDONLY | O_CLOEXEC);
	pthread_atfork(coffer_atfork_prepare, NULL, coffer_atfork_child);
}

// coffer_load_copy maps a fresh copy of this library in a forked child and
// returns its v3.2 function list (whose start is the v3.0 list).
static CK_FUNCTION_LIST_3_2_PTR coffer_load_copy(void) {
	if (copy_fd < 0 || copy_loaded) copy_fd = coffer_copy();
	if (copy_fd < 0) {
		fprintf(stderr, "coffer pkcs11: cannot copy the library for a forked child (%s): call C_Initialize before fork, or exec\n", strerror(errno));
		return NULL;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", copy_fd);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	copy_loaded = 1;
	if (h == NULL) {
		fprintf(stderr, "coffer pkcs11: loading a fresh copy in a forked child: %s\n", dlerror());
		return NULL;
	}
	CK_C_GetInterface get = (CK_C_GetInterface)dlsym(h, "C_GetInterface");
	CK_VERSION v3 = {3, 2};
	CK_INTERFACE_PTR iface = NULL;
	if (get == NULL || get(NULL, &v3, &iface, 0) != CKR_OK || iface == NULL) return NULL;
	return (CK_FUNCTION_LIST_3_2_PTR)iface->pFunctionList;
}

CK_RV C_Initialize(CK_VOID_PTR pInitArgs) {
	if (forked) {
		if (fwd32 == NULL) fwd32 = coffer_load_copy();
		if (fwd32 == NULL) return CKR_FUNCTION_FAILED;
		fwd = (CK_FUNCTION_LIST_3_0_PTR)fwd32; // CK_FUNCTION_LIST_3_2 begins as CK_FUNCTION_LIST_3_0

	}
	FWD(C_Initialize, pInitArgs);
	CK_RV rv = goInitialize(pInitArgs);
	if (rv == CKR_OK) live = 1;
	return rv;
}

CK_RV C_Finalize(CK_VOID_PTR pReserved) {
	FWD(C_Finalize, pReserved);
	LIVE;
	CK_RV rv = goFinalize(pReserved);
	if (rv == CKR_OK) live = 0;
	return rv;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
	if (ppFunctionList == NULL) return CKR_ARGUMENTS_BAD;
	*ppFunctionList = &coffer_functions;
	return CKR_OK;
}

// The first is the default of C_GetInterface. Version 3.2 adds
// C_EncapsulateKey and C_DecapsulateKey (pkcs11_3_2.h).
static CK_INTERFACE coffer_interfaces[] = {
	{(CK_CHAR *)"PKCS 11", &coffer_functions_3_0, 0},
	{(CK_CHAR *)"PKCS 11", &coffer_functions_3_2, 0},
	{(CK_CHAR *)"PKCS 11", &coffer_functions, 0},
};
#define NUM_INTERFACES (sizeof(coffer_interfaces) / sizeof(coffer_interfaces[0]))

CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount) {
	if (pulCount == NULL) return CKR_ARGUMENTS_BAD;
	if (pInterfacesList == NULL) {
		*pulCount = NUM_INTERFACES;
		return CKR_OK;
	}
	if (*pulCount < NUM_INTERFACES) {
		*pulCount = NUM_INTERFACES;
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(pInterfacesList, coffer_interfaces, sizeof(coffer_interfaces));
	*pulCount = NUM_INTERFACES;
	return CKR_OK;
}

// C_GetInterface: "PKCS 11" (or NULL), version 3.0 (the default), 3.2 or 2.40.
// The library is not fork-safe in PKCS#11's sense (a child must call
// C_Initialize), so a request for CKF_INTERFACE_FORK_SAFE finds nothing.
CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags) {
	if (ppInterface == NULL) return CKR_ARGUMENTS_BAD;
	if (pInterfaceName != NULL && strcmp((const char *)pInterfaceName, "PKCS 11") != 0) return CKR_ARGUMENTS_BAD;
	if (flags != 0) return CKR_ARGUMENTS_BAD;
	for (size_t i = 0; i < NUM_INTERFACES; i++) {
		CK_VERSION *v = (CK_VERSION *)coffer_interfaces[i].pFunctionList;
		if (pVersion == NULL || (pVersion->major == v->major && pVersion->minor == v->minor)) {
			*ppInterface = &coffer_interfaces[i];
			return CKR_OK;
		}
	}
	return CKR_ARGUMENTS_BAD;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo) { FWD(C_GetInfo, pInfo); LIVE; return goGetInfo(pInfo); }
CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) { FWD(C_GetSlotList, tokenPresent, pSlotList, pulCount); LIVE; return goGetSlotList(tokenPresent, pSlotList, pulCount); }
CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) { FWD(C_GetSlotInfo, slotID, pInfo); LIVE; return goGetSlotInfo(slotID, pInfo); }
CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) { FWD(C_GetTokenInfo, slotID, pInfo); LIVE; return goGetTokenInfo(slotID, pInfo); }
CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount) { FWD(C_GetMechanismList, slotID, pMechanismList, pulCount); LIVE; return goGetMechanismList(slotID, pMechanismList, pulCount); }
CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) { FWD(C_GetMechanismInfo, slotID, type, pInfo); LIVE; return goGetMechanismInfo(slotID, type, pInfo); }
CK_RV C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel) { FWD(C_InitToken, slotID, pPin, ulPinLen, pLabel); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) { FWD(C_InitPIN, hSession, pPin, ulPinLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) { FWD(C_SetPIN, hSession, pOldPin, ulOldLen, pNewPin, ulNewLen); LIVE; return goSetPIN(hSession, pOldPin, ulOldLen, pNewPin, ulNewLen); }
CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) { FWD(C_OpenSession, slotID, flags, pApplication, Notify, phSession); LIVE; return goOpenSession(slotID, flags, phSession); }
CK_RV C_CloseSession(CK_SESSION_HANDLE hSession) { FWD(C_CloseSession, hSession); LIVE; return goCloseSession(hSession); }
CK_RV C_CloseAllSessions(CK_SLOT_ID slotID) { FWD(C_CloseAllSessions, slotID); LIVE; return goCloseAllSessions(slotID); }
CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) { FWD(C_GetSessionInfo, hSession, pInfo); LIVE; return goGetSessionInfo(hSession, pInfo); }
CK_RV C_GetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen) { FWD(C_GetOperationState, hSession, pOperationState, pulOperationStateLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_SetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen, CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey) { FWD(C_SetOperationState, hSession, pOperationState, ulOperationStateLen, hEncryptionKey, hAuthenticationKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) { FWD(C_Login, hSession, userType, pPin, ulPinLen); LIVE; return goLogin(hSession, userType, pPin, ulPinLen); }
CK_RV C_Logout(CK_SESSION_HANDLE hSession) { FWD(C_Logout, hSession); LIVE; return goLogout(hSession); }
CK_RV C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject) { FWD(C_CreateObject, hSession, pTemplate, ulCount, phObject); LIVE; return goCreateObject(hSession, pTemplate, ulCount, phObject); }
CK_RV C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject) { FWD(C_CopyObject, hSession, hObject, pTemplate, ulCount, phNewObject); LIVE; return goCopyObject(hSession, hObject, pTemplate, ulCount, phNewObject); }
CK_RV C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject) { FWD(C_DestroyObject, hSession, hObject); LIVE; return goDestroyObject(hSession, hObject); }
CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize) { FWD(C_GetObjectSize, hSession, hObject, pulSize); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) { FWD(C_GetAttributeValue, hSession, hObject, pTemplate, ulCount); LIVE; return goGetAttributeValue(hSession, hObject, pTemplate, ulCount); }
CK_RV C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) { FWD(C_SetAttributeValue, hSession, hObject, pTemplate, ulCount); LIVE; return goSetAttributeValue(hSession, hObject, pTemplate, ulCount); }
CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) { FWD(C_FindObjectsInit, hSession, pTemplate, ulCount); LIVE; return goFindObjectsInit(hSession, pTemplate, ulCount); }
CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) { FWD(C_FindObjects, hSession, phObject, ulMaxObjectCount, pulObjectCount); LIVE; return goFindObjects(hSession, phObject, ulMaxObjectCount, pulObjectCount); }
CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession) { FWD(C_FindObjectsFinal, hSession); LIVE; return goFindObjectsFinal(hSession); }
CK_RV C_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_EncryptInit, hSession, pMechanism, hKey); LIVE; coffer_call call = {.op = COFFER_OP_ENCRYPT_INIT}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = (void *)(uintptr_t)hKey; return coffer_call_submit(c); }
CK_RV C_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen) { FWD(C_Encrypt, hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen); LIVE; coffer_call call = {.op = COFFER_OP_ENCRYPT}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pData; c->a[2] = (void *)(uintptr_t)ulDataLen; c->a[3] = pEncryptedData; c->a[4] = pulEncryptedDataLen; return coffer_call_submit(c); }
CK_RV C_EncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) { FWD(C_EncryptUpdate, hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen); LIVE; coffer_call call = {.op = COFFER_OP_ENCRYPT_UPDATE}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pPart; c->a[2] = (void *)(uintptr_t)ulPartLen; c->a[3] = pEncryptedPart; c->a[4] = pulEncryptedPartLen; return coffer_call_submit(c); }
CK_RV C_EncryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart, CK_ULONG_PTR pulLastEncryptedPartLen) { FWD(C_EncryptFinal, hSession, pLastEncryptedPart, pulLastEncryptedPartLen); LIVE; coffer_call call = {.op = COFFER_OP_ENCRYPT_FINAL}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pLastEncryptedPart; c->a[2] = pulLastEncryptedPartLen; return coffer_call_submit(c); }
CK_RV C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_DecryptInit, hSession, pMechanism, hKey); LIVE; coffer_call call = {.op = COFFER_OP_DECRYPT_INIT}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = (void *)(uintptr_t)hKey; return coffer_call_submit(c); }
CK_RV C_Decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) { FWD(C_Decrypt, hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen); LIVE; coffer_call call = {.op = COFFER_OP_DECRYPT}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pEncryptedData; c->a[2] = (void *)(uintptr_t)ulEncryptedDataLen; c->a[3] = pData; c->a[4] = pulDataLen; return coffer_call_submit(c); }
CK_RV C_DecryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) { FWD(C_DecryptUpdate, hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen); LIVE; coffer_call call = {.op = COFFER_OP_DECRYPT_UPDATE}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pEncryptedPart; c->a[2] = (void *)(uintptr_t)ulEncryptedPartLen; c->a[3] = pPart; c->a[4] = pulPartLen; return coffer_call_submit(c); }
CK_RV C_DecryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen) { FWD(C_DecryptFinal, hSession, pLastPart, pulLastPartLen); LIVE; coffer_call call = {.op = COFFER_OP_DECRYPT_FINAL}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pLastPart; c->a[2] = pulLastPartLen; return coffer_call_submit(c); }
CK_RV C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism) { FWD(C_DigestInit, hSession, pMechanism); LIVE; coffer_call call = {.op = COFFER_OP_DIGEST_INIT}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; return coffer_call_submit(c); }
CK_RV C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) { FWD(C_Digest, hSession, pData, ulDataLen, pDigest, pulDigestLen); LIVE; coffer_call call = {.op = COFFER_OP_DIGEST}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pData; c->a[2] = (void *)(uintptr_t)ulDataLen; c->a[3] = pDigest; c->a[4] = pulDigestLen; return coffer_call_submit(c); }
CK_RV C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) { FWD(C_DigestUpdate, hSession, pPart, ulPartLen); LIVE; coffer_call call = {.op = COFFER_OP_DIGEST_UPDATE}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pPart; c->a[2] = (void *)(uintptr_t)ulPartLen; return coffer_call_submit(c); }
CK_RV C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey) { FWD(C_DigestKey, hSession, hKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) { FWD(C_DigestFinal, hSession, pDigest, pulDigestLen); LIVE; coffer_call call = {.op = COFFER_OP_DIGEST_FINAL}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pDigest; c->a[2] = pulDigestLen; return coffer_call_submit(c); }
CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_SignInit, hSession, pMechanism, hKey); LIVE; coffer_call call = {.op = COFFER_OP_SIGN_INIT}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = (void *)(uintptr_t)hKey; return coffer_call_submit(c); }
CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) { FWD(C_Sign, hSession, pData, ulDataLen, pSignature, pulSignatureLen); LIVE; coffer_call call = {.op = COFFER_OP_SIGN}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pData; c->a[2] = (void *)(uintptr_t)ulDataLen; c->a[3] = pSignature; c->a[4] = pulSignatureLen; return coffer_call_submit(c); }
CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) { FWD(C_SignUpdate, hSession, pPart, ulPartLen); LIVE; coffer_call call = {.op = COFFER_OP_SIGN_UPDATE}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pPart; c->a[2] = (void *)(uintptr_t)ulPartLen; return coffer_call_submit(c); }
CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) { FWD(C_SignFinal, hSession, pSignature, pulSignatureLen); LIVE; coffer_call call = {.op = COFFER_OP_SIGN_FINAL}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pSignature; c->a[2] = pulSignatureLen; return coffer_call_submit(c); }
CK_RV C_SignRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_SignRecoverInit, hSession, pMechanism, hKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_SignRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) { FWD(C_SignRecover, hSession, pData, ulDataLen, pSignature, pulSignatureLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_VerifyInit, hSession, pMechanism, hKey); LIVE; coffer_call call = {.op = COFFER_OP_VERIFY_INIT}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = (void *)(uintptr_t)hKey; return coffer_call_submit(c); }
CK_RV C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) { FWD(C_Verify, hSession, pData, ulDataLen, pSignature, ulSignatureLen); LIVE; coffer_call call = {.op = COFFER_OP_VERIFY}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pData; c->a[2] = (void *)(uintptr_t)ulDataLen; c->a[3] = pSignature; c->a[4] = (void *)(uintptr_t)ulSignatureLen; return coffer_call_submit(c); }
CK_RV C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) { FWD(C_VerifyUpdate, hSession, pPart, ulPartLen); LIVE; coffer_call call = {.op = COFFER_OP_VERIFY_UPDATE}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pPart; c->a[2] = (void *)(uintptr_t)ulPartLen; return coffer_call_submit(c); }
CK_RV C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) { FWD(C_VerifyFinal, hSession, pSignature, ulSignatureLen); LIVE; coffer_call call = {.op = COFFER_OP_VERIFY_FINAL}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pSignature; c->a[2] = (void *)(uintptr_t)ulSignatureLen; return coffer_call_submit(c); }
CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_VerifyRecoverInit, hSession, pMechanism, hKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) { FWD(C_VerifyRecover, hSession, pSignature, ulSignatureLen, pData, pulDataLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) { FWD(C_DigestEncryptUpdate, hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) { FWD(C_DecryptDigestUpdate, hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) { FWD(C_SignEncryptUpdate, hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) { FWD(C_DecryptVerifyUpdate, hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey) { FWD(C_GenerateKey, hSession, pMechanism, pTemplate, ulCount, phKey); LIVE; coffer_call call = {.op = COFFER_OP_GENERATE_KEY}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = pTemplate; c->a[3] = (void *)(uintptr_t)ulCount; c->a[4] = phKey; return coffer_call_submit(c); }
CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount, CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount, CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) { FWD(C_GenerateKeyPair, hSession, pMechanism, pPublicKeyTemplate, ulPublicKeyAttributeCount, pPrivateKeyTemplate, ulPrivateKeyAttributeCount, phPublicKey, phPrivateKey); LIVE; coffer_call call = {.op = COFFER_OP_GENERATE_KEY_PAIR}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = pPublicKeyTemplate; c->a[3] = (void *)(uintptr_t)ulPublicKeyAttributeCount; c->a[4] = pPrivateKeyTemplate; c->a[5] = (void *)(uintptr_t)ulPrivateKeyAttributeCount; c->a[6] = phPublicKey; c->a[7] = phPrivateKey; return coffer_call_submit(c); }
CK_RV C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen) { FWD(C_WrapKey, hSession, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen); LIVE; coffer_call call = {.op = COFFER_OP_WRAP_KEY}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = (void *)(uintptr_t)hWrappingKey; c->a[3] = (void *)(uintptr_t)hKey; c->a[4] = pWrappedKey; c->a[5] = pulWrappedKeyLen; return coffer_call_submit(c); }
CK_RV C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) { FWD(C_UnwrapKey, hSession, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulAttributeCount, phKey); LIVE; coffer_call call = {.op = COFFER_OP_UNWRAP_KEY}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = (void *)(uintptr_t)hUnwrappingKey; c->a[3] = pWrappedKey; c->a[4] = (void *)(uintptr_t)ulWrappedKeyLen; c->a[5] = pTemplate; c->a[6] = (void *)(uintptr_t)ulAttributeCount; c->a[7] = phKey; return coffer_call_submit(c); }
CK_RV C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) { FWD(C_DeriveKey, hSession, pMechanism, hBaseKey, pTemplate, ulAttributeCount, phKey); LIVE; coffer_call call = {.op = COFFER_OP_DERIVE_KEY}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = pMechanism; c->a[2] = (void *)(uintptr_t)hBaseKey; c->a[3] = pTemplate; c->a[4] = (void *)(uintptr_t)ulAttributeCount; c->a[5] = phKey; return coffer_call_submit(c); }
CK_RV C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen) { FWD(C_SeedRandom, hSession, pSeed, ulSeedLen); LIVE; return goSeedRandom(hSession, pSeed, ulSeedLen); }
CK_RV C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen) { FWD(C_GenerateRandom, hSession, RandomData, ulRandomLen); LIVE; coffer_call call = {.op = COFFER_OP_GENERATE_RANDOM}; coffer_call *c = &call; c->a[0] = (void *)(uintptr_t)hSession; c->a[1] = RandomData; c->a[2] = (void *)(uintptr_t)ulRandomLen; return coffer_call_submit(c); }
CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE hSession) { FWD(C_GetFunctionStatus, hSession); LIVE; return CKR_FUNCTION_NOT_PARALLEL; }
CK_RV C_CancelFunction(CK_SESSION_HANDLE hSession) { FWD(C_CancelFunction, hSession); LIVE; return CKR_FUNCTION_NOT_PARALLEL; }
CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pRserved) { FWD(C_WaitForSlotEvent, flags, pSlot, pRserved); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_LoginUser(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen) { FWD(C_LoginUser, hSession, userType, pPin, ulPinLen, pUsername, ulUsernameLen); LIVE; return goLoginUser(hSession, userType, pPin, ulPinLen, pUsername, ulUsernameLen); }
CK_RV C_SessionCancel(CK_SESSION_HANDLE hSession, CK_FLAGS flags) { FWD(C_SessionCancel, hSession, flags); LIVE; return goSessionCancel(hSession, flags); }
CK_RV C_MessageEncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_MessageEncryptInit, hSession, pMechanism, hKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_EncryptMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext, CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen) { FWD(C_EncryptMessage, hSession, pParameter, ulParameterLen, pAssociatedData, ulAssociatedDataLen, pPlaintext, ulPlaintextLen, pCiphertext, pulCiphertextLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_EncryptMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) { FWD(C_EncryptMessageBegin, hSession, pParameter, ulParameterLen, pAssociatedData, ulAssociatedDataLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_EncryptMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags) { FWD(C_EncryptMessageNext, hSession, pParameter, ulParameterLen, pPlaintextPart, ulPlaintextPartLen, pCiphertextPart, pulCiphertextPartLen, flags); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_MessageEncryptFinal(CK_SESSION_HANDLE hSession) { FWD(C_MessageEncryptFinal, hSession); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_MessageDecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_MessageDecryptInit, hSession, pMechanism, hKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_DecryptMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen) { FWD(C_DecryptMessage, hSession, pParameter, ulParameterLen, pAssociatedData, ulAssociatedDataLen, pCiphertext, ulCiphertextLen, pPlaintext, pulPlaintextLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_DecryptMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) { FWD(C_DecryptMessageBegin, hSession, pParameter, ulParameterLen, pAssociatedData, ulAssociatedDataLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_DecryptMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags) { FWD(C_DecryptMessageNext, hSession, pParameter, ulParameterLen, pCiphertextPart, ulCiphertextPartLen, pPlaintextPart, pulPlaintextPartLen, flags); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_MessageDecryptFinal(CK_SESSION_HANDLE hSession) { FWD(C_MessageDecryptFinal, hSession); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_MessageSignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_MessageSignInit, hSession, pMechanism, hKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_SignMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) { FWD(C_SignMessage, hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature, pulSignatureLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_SignMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) { FWD(C_SignMessageBegin, hSession, pParameter, ulParameterLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_SignMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) { FWD(C_SignMessageNext, hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature, pulSignatureLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_MessageSignFinal(CK_SESSION_HANDLE hSession) { FWD(C_MessageSignFinal, hSession); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_MessageVerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) { FWD(C_MessageVerifyInit, hSession, pMechanism, hKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_VerifyMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) { FWD(C_VerifyMessage, hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature, ulSignatureLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_VerifyMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) { FWD(C_VerifyMessageBegin, hSession, pParameter, ulParameterLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_VerifyMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) { FWD(C_VerifyMessageNext, hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature, ulSignatureLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
CK_RV C_MessageVerifyFinal(CK_SESSION_HANDLE hSession) { FWD(C_MessageVerifyFinal, hSession); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }

// PKCS#11 v3.2 (pkcs11_3_2.h).
CK_RV C_EncapsulateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hPublicKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen, CK_OBJECT_HANDLE_PTR phKey) { FWD32(C_EncapsulateKey, hSession, pMechanism, hPublicKey, pTemplate, ulAttributeCount, pCiphertext, pulCiphertextLen, phKey); LIVE; return goEncapsulateKey(hSession, pMechanism, hPublicKey, pTemplate, ulAttributeCount, pCiphertext, pulCiphertextLen, phKey); }
CK_RV C_DecapsulateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hPrivateKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen, CK_OBJECT_HANDLE_PTR phKey) { FWD32(C_DecapsulateKey, hSession, pMechanism, hPrivateKey, pTemplate, ulAttributeCount, pCiphertext, ulCiphertextLen, phKey); LIVE; return goDecapsulateKey(hSession, pMechanism, hPrivateKey, pTemplate, ulAttributeCount, pCiphertext, ulCiphertextLen, phKey); }
static CK_RV C_VerifySignatureInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) { FWD32(C_VerifySignatureInit, hSession, pMechanism, hKey, pSignature, ulSignatureLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_VerifySignature(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen) { FWD32(C_VerifySignature, hSession, pData, ulDataLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_VerifySignatureUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) { FWD32(C_VerifySignatureUpdate, hSession, pPart, ulPartLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_VerifySignatureFinal(CK_SESSION_HANDLE hSession) { FWD32(C_VerifySignatureFinal, hSession); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_GetSessionValidationFlags(CK_SESSION_HANDLE hSession, CK_SESSION_VALIDATION_FLAGS_TYPE type, CK_FLAGS *pFlags) { FWD32(C_GetSessionValidationFlags, hSession, type, pFlags); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_AsyncComplete(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pFunctionName, CK_ASYNC_DATA_PTR pResult) { FWD32(C_AsyncComplete, hSession, pFunctionName, pResult); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_AsyncGetID(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pFunctionName, CK_ULONG_PTR pulID) { FWD32(C_AsyncGetID, hSession, pFunctionName, pulID); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_AsyncJoin(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pFunctionName, CK_ULONG ulID, CK_BYTE_PTR pData, CK_ULONG ulData) { FWD32(C_AsyncJoin, hSession, pFunctionName, ulID, pData, ulData); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_WrapKeyAuthenticated(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen) { FWD32(C_WrapKeyAuthenticated, hSession, pMechanism, hWrappingKey, hKey, pAssociatedData, ulAssociatedDataLen, pWrappedKey, pulWrappedKeyLen); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }
static CK_RV C_UnwrapKeyAuthenticated(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_OBJECT_HANDLE_PTR phKey) { FWD32(C_UnwrapKeyAuthenticated, hSession, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulAttributeCount, pAssociatedData, ulAssociatedDataLen, phKey); LIVE; return CKR_FUNCTION_NOT_SUPPORTED; }

// The function lists: each version's begins with the one before it.
#define COFFER_FUNCTIONS_2_40 \
	C_Initialize, \
	C_Finalize, \
	C_GetInfo, \
	C_GetFunctionList, \
	C_GetSlotList, \
	C_GetSlotInfo, \
	C_GetTokenInfo, \
	C_GetMechanismList, \
	C_GetMechanismInfo, \
	C_InitToken, \
	C_InitPIN, \
	C_SetPIN, \
	C_OpenSession, \
	C_CloseSession, \
	C_CloseAllSessions, \
	C_GetSessionInfo, \
	C_GetOperationState, \
	C_SetOperationState, \
	C_Login, \
	C_Logout, \
	C_CreateObject, \
	C_CopyObject, \
	C_DestroyObject, \
	C_GetObjectSize, \
	C_GetAttributeValue, \
	C_SetAttributeValue, \
	C_FindObjectsInit, \
	C_FindObjects, \
	C_FindObjectsFinal, \
	C_EncryptInit, \
	C_Encrypt, \
	C_EncryptUpdate, \
	C_EncryptFinal, \
	C_DecryptInit, \
	C_Decrypt, \
	C_DecryptUpdate, \
	C_DecryptFinal, \
	C_DigestInit, \
	C_Digest, \
	C_DigestUpdate, \
	C_DigestKey, \
	C_DigestFinal, \
	C_SignInit, \
	C_Sign, \
	C_SignUpdate, \
	C_SignFinal, \
	C_SignRecoverInit, \
	C_SignRecover, \
	C_VerifyInit, \
	C_Verify, \
	C_VerifyUpdate, \
	C_VerifyFinal, \
	C_VerifyRecoverInit, \
	C_VerifyRecover, \
	C_DigestEncryptUpdate, \
	C_DecryptDigestUpdate, \
	C_SignEncryptUpdate, \
	C_DecryptVerifyUpdate, \
	C_GenerateKey, \
	C_GenerateKeyPair, \
	C_WrapKey, \
	C_UnwrapKey, \
	C_DeriveKey, \
	C_SeedRandom, \
	C_GenerateRandom, \
	C_GetFunctionStatus, \
	C_CancelFunction, \
	C_WaitForSlotEvent

#define COFFER_FUNCTIONS_3_0 \
	COFFER_FUNCTIONS_2_40, \
	C_GetInterfaceList, \
	C_GetInterface, \
	C_LoginUser, \
	C_SessionCancel, \
	C_MessageEncryptInit, \
	C_EncryptMessage, \
	C_EncryptMessageBegin, \
	C_EncryptMessageNext, \
	C_MessageEncryptFinal, \
	C_MessageDecryptInit, \
	C_DecryptMessage, \
	C_DecryptMessageBegin, \
	C_DecryptMessageNext, \
	C_MessageDecryptFinal, \
	C_MessageSignInit, \
	C_SignMessage, \
	C_SignMessageBegin, \
	C_SignMessageNext, \
	C_MessageSignFinal, \
	C_MessageVerifyInit, \
	C_VerifyMessage, \
	C_VerifyMessageBegin, \
	C_VerifyMessageNext, \
	C_MessageVerifyFinal

CK_FUNCTION_LIST coffer_functions = {{2, 40}, COFFER_FUNCTIONS_2_40};

CK_FUNCTION_LIST_3_0 coffer_functions_3_0 = {{3, 0}, COFFER_FUNCTIONS_3_0};

CK_FUNCTION_LIST_3_2 coffer_functions_3_2 = {
	{3, 2},
	COFFER_FUNCTIONS_3_0,
	C_EncapsulateKey,
	C_DecapsulateKey,
	C_VerifySignatureInit,
	C_VerifySignature,
	C_VerifySignatureUpdate,
	C_VerifySignatureFinal,
	C_GetSessionValidationFlags,
	C_AsyncComplete,
	C_AsyncGetID,
	C_AsyncJoin,
	C_WrapKeyAuthenticated,
	C_UnwrapKeyAuthenticated,
};
