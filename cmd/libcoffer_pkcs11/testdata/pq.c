// pq loads the library through C_GetInterface("PKCS 11", 3.2) and checks
// the v3.2 functions and parameters that miekg/pkcs11 cannot call:
// C_EncapsulateKey and C_DecapsulateKey with CKM_ML_KEM (both ends of a
// generated ML-KEM-768 and -1024 pair agree; the two-call convention for
// the ciphertext), a decapsulation of Go's ciphertext under a key made
// from Go's seed (SEED, CT and SS in hex), an encapsulation to that key
// whose ciphertext and secret it prints for Go to check ("KEM ct ss"), and
// CKM_ML_DSA with CK_SIGN_ADDITIONAL_CONTEXT (context, deterministic).
// Prints "OK" at the end.
//
// usage: pq LIB PIN SEED CT SS
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pkcs11.h"
#include "../pkcs11_3_2.h"

static CK_FUNCTION_LIST_3_2_PTR f;
static CK_SESSION_HANDLE h;

#define CHECK(call, want) do { CK_RV rv_ = (call); if (rv_ != (want)) { \
	fprintf(stderr, "line %d: %s = 0x%lx, want 0x%lx\n", __LINE__, #call, rv_, (CK_RV)(want)); exit(1); } } while (0)
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } while (0)

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_OBJECT_CLASS secretClass = CKO_SECRET_KEY, pubClass = CKO_PUBLIC_KEY, privClass = CKO_PRIVATE_KEY;
static CK_KEY_TYPE generic = CKK_GENERIC_SECRET, mlkem = CKK_ML_KEM;

static size_t unhex(const char *s, CK_BYTE *out, size_t max) {
	size_t n = strlen(s) / 2;
	if (n > max) FAIL("hex argument too long");
	for (size_t i = 0; i < n; i++) sscanf(s + 2 * i, "%2hhx", &out[i]);
	return n;
}

static void puthex(const CK_BYTE *b, CK_ULONG n) {
	for (CK_ULONG i = 0; i < n; i++) printf("%02x", b[i]);
}

// value reads CKA_VALUE of a non-sensitive secret key.
static CK_ULONG value(CK_OBJECT_HANDLE k, CK_BYTE *out) {
	CK_ATTRIBUTE a = {CKA_VALUE, out, 64};
	CHECK(f->C_GetAttributeValue(h, k, &a, 1), CKR_OK);
	return a.ulValueLen;
}

static CK_ATTRIBUTE secretTemplate[] = {
	{CKA_CLASS, &secretClass, sizeof secretClass}, {CKA_KEY_TYPE, &generic, sizeof generic},
	{CKA_SENSITIVE, &no, sizeof no}, {CKA_EXTRACTABLE, &yes, sizeof yes}, {CKA_TOKEN, &no, sizeof no},
};
#define NSECRET (sizeof secretTemplate / sizeof secretTemplate[0])

static void kem_pair(CK_ULONG set, CK_ULONG ctLen) {
	CK_MECHANISM gen = {CKM_ML_KEM_KEY_PAIR_GEN, NULL, 0}, kem = {CKM_ML_KEM, NULL, 0};
	CK_ATTRIBUTE pubT[] = {{CKA_PARAMETER_SET, &set, sizeof set}, {CKA_TOKEN, &no, sizeof no}};
	CK_ATTRIBUTE privT[] = {{CKA_TOKEN, &no, sizeof no}};
	CK_OBJECT_HANDLE pub, priv, k1, k2;
	CHECK(f->C_GenerateKeyPair(h, &gen, pubT, 2, privT, 1, &pub, &priv), CKR_OK);

	CK_BYTE ct[2048], v1[64], v2[64];
	CK_ULONG n = 0;
	CHECK(f->C_EncapsulateKey(h, &kem, pub, secretTemplate, NSECRET, NULL, &n, &k1), CKR_OK);
	if (n != ctLen) FAIL("ciphertext length query: %lu, want %lu", n, ctLen);
	n = 10;
	CHECK(f->C_EncapsulateKey(h, &kem, pub, secretTemplate, NSECRET, ct, &n, &k1), CKR_BUFFER_TOO_SMALL);
	if (n != ctLen) FAIL("short buffer: length %lu, want %lu", n, ctLen);
	n = sizeof ct;
	CHECK(f->C_EncapsulateKey(h, &kem, pub, secretTemplate, NSECRET, ct, &n, &k1), CKR_OK);
	if (n != ctLen) FAIL("ciphertext of %lu bytes, want %lu", n, ctLen);
	CHECK(f->C_DecapsulateKey(h, &kem, priv, secretTemplate, NSECRET, ct, n, &k2), CKR_OK);
	if (value(k1, v1) != 32 || value(k2, v2) != 32 || memcmp(v1, v2, 32) != 0) FAIL("ML-KEM set %lu: the two ends' secrets differ", set);

	// The wrong halves, a short ciphertext, the wrong mechanism.
	CHECK(f->C_DecapsulateKey(h, &kem, pub, secretTemplate, NSECRET, ct, n, &k2), CKR_KEY_TYPE_INCONSISTENT);
	CHECK(f->C_EncapsulateKey(h, &kem, priv, secretTemplate, NSECRET, ct, &n, &k2), CKR_KEY_TYPE_INCONSISTENT);
	CHECK(f->C_DecapsulateKey(h, &kem, priv, secretTemplate, NSECRET, ct, n - 1, &k2), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CK_MECHANISM dsa = {CKM_ML_DSA, NULL, 0};
	CHECK(f->C_EncapsulateKey(h, &dsa, pub, secretTemplate, NSECRET, ct, &n, &k2), CKR_MECHANISM_INVALID);
	CHECK(f->C_EncapsulateKey(h, &kem, pub, secretTemplate, NSECRET, ct, NULL, &k2), CKR_ARGUMENTS_BAD);
}

// go_seed decapsulates Go's ciphertext under a key made from Go's seed,
// then encapsulates to it and prints the result for Go.
static void go_seed(const char *seedHex, const char *ctHex, const char *ssHex) {
	CK_BYTE seed[64], ct[2048], ss[32], ek[2048], got[64];
	size_t seedLen = unhex(seedHex, seed, sizeof seed), ctLen = unhex(ctHex, ct, sizeof ct);
	unhex(ssHex, ss, sizeof ss);
	CK_ULONG set = CKP_ML_KEM_768;
	CK_ATTRIBUTE privT[] = {
		{CKA_CLASS, &privClass, sizeof privClass}, {CKA_KEY_TYPE, &mlkem, sizeof mlkem},
		{CKA_PARAMETER_SET, &set, sizeof set}, {CKA_SEED, seed, seedLen}, {CKA_TOKEN, &no, sizeof no},
	};
	CK_OBJECT_HANDLE priv, pub, k;
	CHECK(f->C_CreateObject(h, privT, 5, &priv), CKR_OK);
	CK_MECHANISM kem = {CKM_ML_KEM, NULL, 0};
	CHECK(f->C_DecapsulateKey(h, &kem, priv, secretTemplate, NSECRET, ct, ctLen, &k), CKR_OK);
	if (value(k, got) != 32 || memcmp(got, ss, 32) != 0) FAIL("decapsulation of Go's ciphertext differs from Go's secret");

	// The private key's CKA_SEED stays in: it is sensitive by default.
	CK_ATTRIBUTE sa = {CKA_SEED, got, sizeof got};
	CHECK(f->C_GetAttributeValue(h, priv, &sa, 1), CKR_ATTRIBUTE_SENSITIVE);

	// Go's encapsulation key (PQ_EK), as CKA_VALUE of a public key object.
	CK_ATTRIBUTE pubT[] = {
		{CKA_CLASS, &pubClass, sizeof pubClass}, {CKA_KEY_TYPE, &mlkem, sizeof mlkem},
		{CKA_PARAMETER_SET, &set, sizeof set}, {CKA_VALUE, NULL, 0}, {CKA_TOKEN, &no, sizeof no},
	};
	const char *ekHex = getenv("PQ_EK");
	if (ekHex == NULL) FAIL("PQ_EK not set");
	pubT[3].pValue = ek;
	pubT[3].ulValueLen = unhex(ekHex, ek, sizeof ek);
	CHECK(f->C_CreateObject(h, pubT, 5, &pub), CKR_OK);
	CK_ULONG n = sizeof ct;
	CHECK(f->C_EncapsulateKey(h, &kem, pub, secretTemplate, NSECRET, ct, &n, &k), CKR_OK);
	CK_ULONG vn = value(k, got);
	printf("KEM ");
	puthex(ct, n);
	printf(" ");
	puthex(got, vn);
	printf("\n");
}

static void dsa(void) {
	CK_ULONG set = CKP_ML_DSA_65;
	CK_MECHANISM gen = {CKM_ML_DSA_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pubT[] = {{CKA_PARAMETER_SET, &set, sizeof set}, {CKA_TOKEN, &no, sizeof no}};
	CK_ATTRIBUTE privT[] = {{CKA_TOKEN, &no, sizeof no}};
	CK_OBJECT_HANDLE pub, priv;
	CHECK(f->C_GenerateKeyPair(h, &gen, pubT, 2, privT, 1, &pub, &priv), CKR_OK);

	CK_BYTE msg[] = "signed under a context", ctx[] = "coffer", other[] = "other";
	CK_SIGN_ADDITIONAL_CONTEXT p = {CKH_DETERMINISTIC_REQUIRED, ctx, sizeof ctx - 1};
	CK_MECHANISM m = {CKM_ML_DSA, &p, sizeof p};
	CK_BYTE s1[5000], s2[5000];
	CK_ULONG n1 = sizeof s1, n2 = sizeof s2;
	CHECK(f->C_SignInit(h, &m, priv), CKR_OK);
	CHECK(f->C_Sign(h, msg, sizeof msg, s1, &n1), CKR_OK);
	CHECK(f->C_SignInit(h, &m, priv), CKR_OK);
	CHECK(f->C_Sign(h, msg, sizeof msg, s2, &n2), CKR_OK);
	if (n1 != 3309 || n1 != n2 || memcmp(s1, s2, n1) != 0) FAIL("deterministic ML-DSA-65 signatures differ or have the wrong size (%lu)", n1);
	CHECK(f->C_VerifyInit(h, &m, pub), CKR_OK);
	CHECK(f->C_Verify(h, msg, sizeof msg, s1, n1), CKR_OK);

	CK_SIGN_ADDITIONAL_CONTEXT q = {CKH_HEDGE_PREFERRED, other, sizeof other - 1};
	CK_MECHANISM mo = {CKM_ML_DSA, &q, sizeof q};
	CHECK(f->C_VerifyInit(h, &mo, pub), CKR_OK);
	CHECK(f->C_Verify(h, msg, sizeof msg, s1, n1), CKR_SIGNATURE_INVALID);
	CK_MECHANISM plain = {CKM_ML_DSA, NULL, 0};
	CHECK(f->C_VerifyInit(h, &plain, pub), CKR_OK);
	CHECK(f->C_Verify(h, msg, sizeof msg, s1, n1), CKR_SIGNATURE_INVALID);

	CK_MECHANISM badLen = {CKM_ML_DSA, &p, sizeof p - 1};
	CHECK(f->C_SignInit(h, &badLen, priv), CKR_MECHANISM_PARAM_INVALID);
	CK_BYTE longCtx[256] = {0};
	CK_SIGN_ADDITIONAL_CONTEXT l = {CKH_HEDGE_REQUIRED, longCtx, sizeof longCtx};
	CK_MECHANISM ml = {CKM_ML_DSA, &l, sizeof l};
	CHECK(f->C_SignInit(h, &ml, priv), CKR_MECHANISM_PARAM_INVALID);
}

int main(int argc, char **argv) {
	if (argc < 6) FAIL("usage: pq LIB PIN SEED CT SS");
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) FAIL("%s", dlerror());
	CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
	if (!gi) FAIL("no C_GetInterface");
	CK_VERSION v32 = {3, 2};
	CK_INTERFACE_PTR iface;
	CHECK(gi((CK_UTF8CHAR_PTR)"PKCS 11", &v32, &iface, 0), CKR_OK);
	f = (CK_FUNCTION_LIST_3_2_PTR)iface->pFunctionList;
	// The default interface stays version 3.0; the list has 3.0, 3.2 and 2.40.
	CK_INTERFACE_PTR def;
	CHECK(gi(NULL, NULL, &def, 0), CKR_OK);
	CK_VERSION *dv = (CK_VERSION *)def->pFunctionList;
	if (dv->major != 3 || dv->minor != 0) FAIL("default interface %d.%d, want 3.0", dv->major, dv->minor);
	CK_C_GetInterfaceList gil = (CK_C_GetInterfaceList)dlsym(lib, "C_GetInterfaceList");
	CK_ULONG count = 0;
	CHECK(gil(NULL, &count), CKR_OK);
	if (count != 3) FAIL("%lu interfaces, want 3", count);
	if (f->version.major != 3 || f->version.minor != 2) FAIL("interface version %d.%d", f->version.major, f->version.minor);
	CHECK(f->C_Initialize(NULL), CKR_OK);
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	CHECK(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CK_MECHANISM_INFO mi;
	CHECK(f->C_GetMechanismInfo(slot, CKM_ML_KEM, &mi), CKR_OK);
	if (!(mi.flags & CKF_ENCAPSULATE) || !(mi.flags & CKF_DECAPSULATE)) FAIL("CKM_ML_KEM flags 0x%lx", mi.flags);
	CHECK(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h), CKR_OK);
	CHECK(f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2])), CKR_OK);

	kem_pair(CKP_ML_KEM_768, 1088);
	kem_pair(CKP_ML_KEM_1024, 1568);
	go_seed(argv[3], argv[4], argv[5]);
	dsa();
	CHECK(f->C_Finalize(NULL), CKR_OK);
	printf("OK\n");
	return 0;
}
