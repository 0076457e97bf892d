// The queue of calls from application threads to the library's dispatcher
// (see call.h).
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "call.h"
#include "_cgo_export.h"

static CK_RV coffer_call_queue(coffer_call *c);

static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
static int in_flight; // calls made and not yet answered
static coffer_call *head, *tail;
static int efd = -1;   // the dispatcher's eventfd; -1 when it is not running
static int sleeping;   // the dispatcher waits on efd: wake it

static void futex(int *addr, int op, int val) {
	syscall(SYS_futex, addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

// coffer_call_submit makes the call. A call made while no other is in
// flight runs on the caller's thread, in Go: nothing waits for a P there,
// and a hand-off to the dispatcher would wake an idle CPU twice, which
// costs more than the call (tens of microseconds on a virtual machine).
CK_RV coffer_call_submit(coffer_call *c) {
	if (__atomic_add_fetch(&in_flight, 1, __ATOMIC_ACQ_REL) == 1) {
		CK_RV rv = goRunCall(c);
		__atomic_sub_fetch(&in_flight, 1, __ATOMIC_ACQ_REL);
		return rv;
	}
	CK_RV rv = coffer_call_queue(c);
	__atomic_sub_fetch(&in_flight, 1, __ATOMIC_ACQ_REL);
	return rv;
}

// coffer_call_queue hands the call to the dispatcher and waits for it.
static CK_RV coffer_call_queue(coffer_call *c) {
	pthread_mutex_lock(&queue_mu);
	if (efd < 0) {
		pthread_mutex_unlock(&queue_mu);
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	if (tail) tail->next = c; else head = c;
	tail = c;
	if (sleeping) { // written under the lock: the descriptor stays open
		uint64_t one = 1;
		while (write(efd, &one, sizeof one) < 0 && errno == EINTR) {
		}
		sleeping = 0;
	}
	pthread_mutex_unlock(&queue_mu);
	int running = 0;
	if (__atomic_compare_exchange_n(&c->state, &running, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == 2) futex(&c->state, FUTEX_WAIT, 2);
	}
	return c->rv;
}

int coffer_calls_open(void) {
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0) return -1;
	pthread_mutex_lock(&queue_mu);
	efd = fd;
	sleeping = 0;
	pthread_mutex_unlock(&queue_mu);
	return fd;
}

// coffer_calls_close refuses new calls; the dispatcher then takes what is
// queued and closes the eventfd.
void coffer_calls_close(void) {
	pthread_mutex_lock(&queue_mu);
	efd = -1;
	pthread_mutex_unlock(&queue_mu);
}

// coffer_calls_take returns every queued call, oldest first, or NULL and
// notes that the dispatcher is about to sleep.
coffer_call *coffer_calls_take(void) {
	pthread_mutex_lock(&queue_mu);
	coffer_call *list = head;
	head = tail = NULL;
	if (list == NULL) sleeping = 1;
	pthread_mutex_unlock(&queue_mu);
	return list;
}
