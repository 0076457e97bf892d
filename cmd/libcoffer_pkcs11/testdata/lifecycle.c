// lifecycle loads the library and checks C_Finalize + C_Initialize and
// fork: the child gets CKR_CRYPTOKI_NOT_INITIALIZED, and C_Initialize
// there fails at once (Go's runtime does not survive fork without exec)
// instead of hanging; the parent keeps working. Prints "OK" on success.
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "pkcs11.h"

static CK_FUNCTION_LIST_PTR f;

#define CHECK(call, want) do { CK_RV rv_ = (call); if (rv_ != (want)) { \
	fprintf(stderr, "%s: %s = 0x%lx, want 0x%lx\n", who, #call, rv_, (CK_RV)(want)); return 1; } } while (0)

static int session_works(const char *who, const char *pin) {
	CK_SLOT_ID slot; CK_ULONG n = 1; CK_SESSION_HANDLE h; CK_BYTE buf[16];
	CHECK(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CHECK(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	CHECK(f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	CHECK(f->C_GenerateRandom(h, buf, sizeof buf), CKR_OK);
	CHECK(f->C_CloseSession(h), CKR_OK);
	return 0;
}

int main(int argc, char **argv) {
	const char *who = "parent";
	if (argc != 3) { fprintf(stderr, "usage: lifecycle LIB PIN\n"); return 2; }
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	CHECK(gfl(&f), CKR_OK);
	CK_INFO info;
	CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK(f->C_Initialize(NULL), CKR_OK);
	CHECK(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	if (session_works(who, argv[2])) return 1;
	CHECK(f->C_Finalize(NULL), CKR_OK);
	CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK(f->C_Initialize(NULL), CKR_OK);
	if (session_works(who, argv[2])) return 1;

	pid_t pid = fork();
	if (pid == 0) {
		who = "child";
		CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
		CHECK(f->C_Initialize(NULL), CKR_FUNCTION_FAILED);
		CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "child failed: status %d\n", status); return 1; }
	if (session_works(who, argv[2])) return 1;
	CHECK(f->C_Finalize(NULL), CKR_OK);
	printf("OK\n");
	return 0;
}
