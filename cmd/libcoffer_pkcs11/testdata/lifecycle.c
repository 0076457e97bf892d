// lifecycle loads the library and checks C_Finalize + C_Initialize and
// fork: a child gets CKR_CRYPTOKI_NOT_INITIALIZED until it calls
// C_Initialize, then works (and so does its own child), while the parent
// keeps working from another thread through the forks. With "fresh" as the
// third argument the parent never initializes before forking. Prints "OK".
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "pkcs11.h"

static CK_FUNCTION_LIST_PTR f;
static const char *pin;
static volatile int stop;

#define CHECK(call, want) do { CK_RV rv_ = (call); if (rv_ != (want)) { \
	fprintf(stderr, "%s: %s = 0x%lx, want 0x%lx\n", who, #call, rv_, (CK_RV)(want)); return 1; } } while (0)

static int session_works(const char *who) {
	CK_SLOT_ID slot; CK_ULONG n = 1; CK_SESSION_HANDLE h; CK_BYTE buf[16];
	CHECK(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CHECK(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	CK_RV rv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		fprintf(stderr, "%s: C_Login = 0x%lx\n", who, rv);
		return 1;
	}
	CHECK(f->C_GenerateRandom(h, buf, sizeof buf), CKR_OK);
	CHECK(f->C_CloseSession(h), CKR_OK);
	return 0;
}

// busy keeps the parent's library at work while the main thread forks.
static void *busy(void *arg) {
	const char *who = "parent thread";
	CK_SLOT_ID slot; CK_ULONG n = 1; CK_SESSION_HANDLE h; CK_BYTE buf[32];
	if (f->C_GetSlotList(CK_TRUE, &slot, &n) != CKR_OK || f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h) != CKR_OK) {
		fprintf(stderr, "%s: cannot open a session\n", who);
		return (void *)1;
	}
	CK_RV rv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		fprintf(stderr, "%s: C_Login = 0x%lx\n", who, rv);
		return (void *)1;
	}
	long ops = 0;
	while (!stop) {
		CK_RV rv = f->C_GenerateRandom(h, buf, sizeof buf);
		if (rv != CKR_OK) {
			fprintf(stderr, "%s: C_GenerateRandom = 0x%lx after %ld\n", who, rv, ops);
			return (void *)1;
		}
		ops++;
	}
	f->C_CloseSession(h);
	return NULL;
}

// child runs in a forked process; depth 0 forks once more.
static int child(int depth) {
	const char *who = depth == 0 ? "child" : "grandchild";
	CK_INFO info;
	CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK(f->C_Initialize(NULL), CKR_OK);
	CHECK(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	if (session_works(who)) return 1;
	if (depth == 0) {
		pid_t pid = fork();
		if (pid == 0) _exit(child(1));
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "grandchild failed: status %d\n", status); return 1; }
	}
	CHECK(f->C_Finalize(NULL), CKR_OK);
	CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK(f->C_Initialize(NULL), CKR_OK);
	if (session_works(who)) return 1;
	CHECK(f->C_Finalize(NULL), CKR_OK);
	return 0;
}

static int fork_children(const char *who, int count) {
	pid_t pids[8];
	for (int i = 0; i < count; i++) {
		pids[i] = fork();
		if (pids[i] < 0) { perror("fork"); return 1; }
		if (pids[i] == 0) _exit(child(0));
	}
	for (int i = 0; i < count; i++) {
		int status;
		waitpid(pids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "%s: child %d failed: status %d\n", who, i, status); return 1; }
	}
	return 0;
}

int main(int argc, char **argv) {
	const char *who = "parent";
	if (argc < 3) { fprintf(stderr, "usage: lifecycle LIB PIN [fresh]\n"); return 2; }
	pin = argv[2];
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	CHECK(gfl(&f), CKR_OK);
	CK_INFO info;
	CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	if (argc > 3 && strcmp(argv[3], "fresh") == 0) {
		if (fork_children(who, 2)) return 1;
		CHECK(f->C_Initialize(NULL), CKR_OK);
		if (session_works(who)) return 1;
		CHECK(f->C_Finalize(NULL), CKR_OK);
		printf("OK\n");
		return 0;
	}
	CHECK(f->C_Initialize(NULL), CKR_OK);
	CHECK(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	if (session_works(who)) return 1;
	CHECK(f->C_Finalize(NULL), CKR_OK);
	CHECK(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK(f->C_Initialize(NULL), CKR_OK);
	if (session_works(who)) return 1;

	pthread_t t;
	pthread_create(&t, NULL, busy, NULL);
	for (int round = 0; round < 2; round++)
		if (fork_children(who, 2)) return 1;
	stop = 1;
	void *res;
	pthread_join(t, &res);
	if (res != NULL) return 1;
	if (session_works(who)) return 1;
	CHECK(f->C_Finalize(NULL), CKR_OK);
	printf("OK\n");
	return 0;
}
