// Calls handed to Go. A C thread that enters Go gets a goroutine locked to
// it: each of that goroutine's waits for the network hands the thread's P
// (Go's right to run) to another thread and back, and a thread coming back
// from C must find a free P first. With many application threads that is
// most of the cost of a call. So while another call is in flight, the
// functions that may talk to the HSMs (and their C_*Init) do not enter Go:
// the application's thread queues the call (calls.c), wakes the library's
// dispatcher goroutine through an eventfd when it sleeps, and waits on a
// futex; a worker goroutine does the work on the caller's buffers
// (calls.go) and wakes it. A call made alone runs on the caller's thread.
#ifndef COFFER_CALL_H
#define COFFER_CALL_H
#include <stdint.h>
#include "pkcs11.h"

enum coffer_op {
	COFFER_OP_ENCRYPT_INIT,
	COFFER_OP_DECRYPT_INIT,
	COFFER_OP_DIGEST_INIT,
	COFFER_OP_SIGN_INIT,
	COFFER_OP_VERIFY_INIT,
	COFFER_OP_ENCRYPT,
	COFFER_OP_ENCRYPT_UPDATE,
	COFFER_OP_ENCRYPT_FINAL,
	COFFER_OP_DECRYPT,
	COFFER_OP_DECRYPT_UPDATE,
	COFFER_OP_DECRYPT_FINAL,
	COFFER_OP_DIGEST,
	COFFER_OP_DIGEST_UPDATE,
	COFFER_OP_DIGEST_FINAL,
	COFFER_OP_SIGN,
	COFFER_OP_SIGN_UPDATE,
	COFFER_OP_SIGN_FINAL,
	COFFER_OP_VERIFY,
	COFFER_OP_VERIFY_UPDATE,
	COFFER_OP_VERIFY_FINAL,
	COFFER_OP_GENERATE_KEY,
	COFFER_OP_GENERATE_KEY_PAIR,
	COFFER_OP_WRAP_KEY,
	COFFER_OP_UNWRAP_KEY,
	COFFER_OP_DERIVE_KEY,
	COFFER_OP_GENERATE_RANDOM,
};

typedef struct coffer_call {
	int op;
	int state; // 0 running, 1 done, 2 the caller sleeps on it (a futex word)
	CK_RV rv;
	void *a[8]; // the arguments: pointers, or integers as uintptr_t
	struct coffer_call *next;
} coffer_call;

// Hidden: a program that links these names itself (the package's tests do)
// must not capture the library's calls.
#define COFFER_HIDDEN __attribute__((visibility("hidden")))

// The application's side: a call lives on the caller's stack, which waits.
COFFER_HIDDEN CK_RV coffer_call_submit(coffer_call *c);

// The library's side.
COFFER_HIDDEN int coffer_calls_open(void);
COFFER_HIDDEN void coffer_calls_close(void);
COFFER_HIDDEN coffer_call *coffer_calls_take(void);
#endif
