// sessioncancel loads the library through C_GetInterface (PKCS#11 3.0), as
// JDK 21 and later do, and checks C_SessionCancel: it ends the operations
// its flags name, single- or multi-part, leaves the others, ignores flags
// of operations that are not active, and a new operation after it starts
// afresh. Arguments: the library and the PIN. Prints "OK".
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "pkcs11.h"

static CK_FUNCTION_LIST_3_0_PTR f;

#define CHECK(call, want) do { CK_RV rv_ = (call); if (rv_ != (want)) { \
	fprintf(stderr, "line %d: %s = 0x%lx, want 0x%lx\n", __LINE__, #call, rv_, (CK_RV)(want)); return 1; } } while (0)

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: sessioncancel LIBRARY PIN\n");
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (lib == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
	if (gi == NULL) {
		fprintf(stderr, "no C_GetInterface\n");
		return 1;
	}
	CK_VERSION v3 = {3, 0};
	CK_INTERFACE_PTR iface = NULL;
	CHECK(gi((CK_UTF8CHAR_PTR) "PKCS 11", &v3, &iface, 0), CKR_OK);
	f = (CK_FUNCTION_LIST_3_0_PTR)iface->pFunctionList;
	CHECK(f->C_Initialize(NULL), CKR_OK);
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	CK_SESSION_HANDLE h;
	CHECK(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CHECK(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h), CKR_OK);
	CHECK(f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2])), CKR_OK);

	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG len = 16;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE tmpl[] = {
		{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}, {CKA_VALUE_LEN, &len, sizeof len},
		{CKA_TOKEN, &no, sizeof no}, {CKA_SIGN, &yes, sizeof yes}, {CKA_ENCRYPT, &yes, sizeof yes},
	};
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_OBJECT_HANDLE key;
	CHECK(f->C_GenerateKey(h, &gen, tmpl, sizeof tmpl / sizeof tmpl[0], &key), CKR_OK);

	CK_MECHANISM cmac = {CKM_AES_CMAC, NULL, 0};
	CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
	CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
	CK_BYTE msg[] = "the message", mac[16], want[16], out[64];
	CK_ULONG macLen = sizeof mac, wantLen = sizeof want, outLen;

	// Nothing active: every flag is ignored.
	CHECK(f->C_SessionCancel(h, CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT | CKF_DIGEST | CKF_FIND_OBJECTS), CKR_OK);
	CHECK(f->C_SessionCancel(h + 1000000, CKF_SIGN), CKR_SESSION_HANDLE_INVALID);

	// A multi-part signature, cancelled halfway; the next one is fresh.
	CHECK(f->C_SignInit(h, &cmac, key), CKR_OK);
	CHECK(f->C_SignUpdate(h, (CK_BYTE_PTR) "abandoned ", 10), CKR_OK);
	CHECK(f->C_DigestInit(h, &sha), CKR_OK);
	CHECK(f->C_DigestUpdate(h, msg, 3), CKR_OK);
	CHECK(f->C_EncryptInit(h, &ecb, key), CKR_OK);
	CHECK(f->C_SessionCancel(h, CKF_SIGN | CKF_VERIFY), CKR_OK);
	CHECK(f->C_SignFinal(h, mac, &macLen), CKR_OPERATION_NOT_INITIALIZED);
	CHECK(f->C_SignInit(h, &cmac, key), CKR_OK);
	CHECK(f->C_SignUpdate(h, msg, sizeof msg), CKR_OK);
	CHECK(f->C_SignFinal(h, mac, &macLen), CKR_OK);
	CHECK(f->C_SignInit(h, &cmac, key), CKR_OK);
	CHECK(f->C_Sign(h, msg, sizeof msg, want, &wantLen), CKR_OK);
	if (macLen != wantLen || memcmp(mac, want, macLen) != 0) {
		fprintf(stderr, "the signature after the cancel covers the abandoned input\n");
		return 1;
	}

	// The digest and the encryption were not named: still active.
	CHECK(f->C_DigestInit(h, &sha), CKR_OPERATION_ACTIVE);
	CHECK(f->C_EncryptInit(h, &ecb, key), CKR_OPERATION_ACTIVE);
	CHECK(f->C_SessionCancel(h, CKF_DIGEST | CKF_ENCRYPT), CKR_OK);
	outLen = sizeof out;
	CHECK(f->C_DigestFinal(h, out, &outLen), CKR_OPERATION_NOT_INITIALIZED);
	CHECK(f->C_DigestInit(h, &sha), CKR_OK);
	CHECK(f->C_EncryptInit(h, &ecb, key), CKR_OK);
	outLen = sizeof out;
	CHECK(f->C_Encrypt(h, out, 16, out, &outLen), CKR_OK);
	outLen = sizeof out;
	CHECK(f->C_Digest(h, msg, sizeof msg, out, &outLen), CKR_OK);

	// A signature whose result was asked for (length query) but not fetched.
	CHECK(f->C_SignInit(h, &cmac, key), CKR_OK);
	CHECK(f->C_Sign(h, msg, sizeof msg, NULL, &macLen), CKR_OK);
	CHECK(f->C_SessionCancel(h, CKF_SIGN), CKR_OK);
	CHECK(f->C_Sign(h, msg, sizeof msg, mac, &macLen), CKR_OPERATION_NOT_INITIALIZED);

	// A search.
	CHECK(f->C_FindObjectsInit(h, NULL, 0), CKR_OK);
	CHECK(f->C_SessionCancel(h, CKF_FIND_OBJECTS), CKR_OK);
	CHECK(f->C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);
	CHECK(f->C_FindObjectsInit(h, NULL, 0), CKR_OK);
	CHECK(f->C_FindObjectsFinal(h), CKR_OK);

	CHECK(f->C_CloseSession(h), CKR_OK);
	CHECK(f->C_Finalize(NULL), CKR_OK);
	printf("OK\n");
	return 0;
}
