package main

/*
#include "call.h"
*/
import "C"

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// dispatcher takes the calls that application threads queue (call.h) and
// hands each to an idle worker goroutine, or a new one. C_Initialize starts
// it; C_Finalize stops it and waits for it and its workers.
type dispatcher struct {
	events  *os.File // the eventfd that wakes it
	done    chan struct{}
	work    chan *C.coffer_call // to an idle worker
	workers sync.WaitGroup
}

func startDispatcher() (*dispatcher, error) {
	fd := C.coffer_calls_open()
	if fd < 0 {
		return nil, errors.New("cannot make the eventfd that carries calls to the library")
	}
	d := &dispatcher{events: os.NewFile(uintptr(fd), "coffer-calls"), done: make(chan struct{}), work: make(chan *C.coffer_call)}
	go d.run()
	return d, nil
}

func (d *dispatcher) run() {
	defer close(d.done)
	defer d.workers.Wait()
	defer close(d.work)
	var buf [8]byte
	for {
		d.startQueued()
		if _, err := d.events.Read(buf[:]); err != nil {
			d.startQueued() // queued before the close
			return
		}
	}
}

// startQueued starts every queued call, until coffer_calls_take finds none
// (and notes that the dispatcher sleeps).
func (d *dispatcher) startQueued() {
	for {
		c := C.coffer_calls_take()
		if c == nil {
			return
		}
		for c != nil {
			next := c.next
			select {
			case d.work <- c:
			default:
				first := c
				d.workers.Go(func() { d.worker(first) })
			}
			c = next
		}
	}
}

// worker runs c, then every call handed to it until the dispatcher stops.
// Workers stay (as many as calls were ever in flight at once): a new
// goroutine per call would grow its stack through the client's call path
// every time.
func (d *dispatcher) worker(c *C.coffer_call) {
	for ; c != nil; c = <-d.work {
		runCall(c)
	}
}

// stop refuses new calls and waits for the dispatcher; calls it started
// finish on their own.
func (d *dispatcher) stop() {
	C.coffer_calls_close()
	d.events.Close()
	<-d.done
}

// runCall does one call and wakes its caller, whatever happens.
func runCall(c *C.coffer_call) {
	r := C.CK_RV(C.CKR_GENERAL_ERROR)
	defer func() { callDone(c, r) }()
	defer guard(&r, "queued call")
	r = dispatch(C.int(c.op), &c.a)
}

// callDone answers c with r and wakes its caller if it sleeps (the other
// side of coffer_call_queue). It is Go, not a cgo call, and wakes through
// a raw system call: a cgo call hands the worker's P (Go's right to run) to
// the runtime for its duration, and the futex wake makes the kernel switch
// to the woken application thread at once on a busy machine, so the P was
// taken from the preempted worker and given to another thread (a wake-up
// of its own), and the worker, coming back, had none and slept: three
// context switches for one answer. A raw system call keeps the P; the
// wake itself never blocks.
func callDone(c *C.coffer_call, r C.CK_RV) {
	c.rv = r
	state := (*int32)(unsafe.Pointer(&c.state))
	if atomic.SwapInt32(state, 1) == 2 {
		const futexWakePrivate = 1 | 128 // FUTEX_WAKE | FUTEX_PRIVATE_FLAG
		syscall.RawSyscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(state)), futexWakePrivate, 1, 0, 0, 0)
	}
}

// goRunCall runs a call on the calling C thread.
//
//export goRunCall
func goRunCall(c *C.coffer_call) (r C.CK_RV) {
	defer guard(&r, "call")
	return dispatch(C.int(c.op), &c.a)
}

// dispatch calls the function op names with the arguments C queued.
func dispatch(op C.int, a *[8]unsafe.Pointer) C.CK_RV {
	switch op {
	case C.COFFER_OP_ENCRYPT_INIT:
		return goEncryptInit(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_OBJECT_HANDLE(uintptr(a[2])))
	case C.COFFER_OP_DECRYPT_INIT:
		return goDecryptInit(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_OBJECT_HANDLE(uintptr(a[2])))
	case C.COFFER_OP_DIGEST_INIT:
		return goDigestInit(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]))
	case C.COFFER_OP_SIGN_INIT:
		return goSignInit(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_OBJECT_HANDLE(uintptr(a[2])))
	case C.COFFER_OP_VERIFY_INIT:
		return goVerifyInit(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_OBJECT_HANDLE(uintptr(a[2])))
	case C.COFFER_OP_ENCRYPT:
		return goEncrypt(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG_PTR(a[4]))
	case C.COFFER_OP_ENCRYPT_UPDATE:
		return goEncryptUpdate(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG_PTR(a[4]))
	case C.COFFER_OP_ENCRYPT_FINAL:
		return goEncryptFinal(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG_PTR(a[2]))
	case C.COFFER_OP_DECRYPT:
		return goDecrypt(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG_PTR(a[4]))
	case C.COFFER_OP_DECRYPT_UPDATE:
		return goDecryptUpdate(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG_PTR(a[4]))
	case C.COFFER_OP_DECRYPT_FINAL:
		return goDecryptFinal(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG_PTR(a[2]))
	case C.COFFER_OP_DIGEST:
		return goDigest(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG_PTR(a[4]))
	case C.COFFER_OP_DIGEST_UPDATE:
		return goDigestUpdate(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])))
	case C.COFFER_OP_DIGEST_FINAL:
		return goDigestFinal(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG_PTR(a[2]))
	case C.COFFER_OP_SIGN:
		return goSign(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG_PTR(a[4]))
	case C.COFFER_OP_SIGN_UPDATE:
		return goSignUpdate(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])))
	case C.COFFER_OP_SIGN_FINAL:
		return goSignFinal(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG_PTR(a[2]))
	case C.COFFER_OP_VERIFY:
		return goVerify(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG(uintptr(a[4])))
	case C.COFFER_OP_VERIFY_UPDATE:
		return goVerifyUpdate(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])))
	case C.COFFER_OP_VERIFY_FINAL:
		return goVerifyFinal(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])))
	case C.COFFER_OP_GENERATE_KEY:
		return goGenerateKey(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_ATTRIBUTE_PTR(a[2]), C.CK_ULONG(uintptr(a[3])), C.CK_OBJECT_HANDLE_PTR(a[4]))
	case C.COFFER_OP_GENERATE_KEY_PAIR:
		return goGenerateKeyPair(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_ATTRIBUTE_PTR(a[2]), C.CK_ULONG(uintptr(a[3])), C.CK_ATTRIBUTE_PTR(a[4]), C.CK_ULONG(uintptr(a[5])), C.CK_OBJECT_HANDLE_PTR(a[6]), C.CK_OBJECT_HANDLE_PTR(a[7]))
	case C.COFFER_OP_WRAP_KEY:
		return goWrapKey(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_OBJECT_HANDLE(uintptr(a[2])), C.CK_OBJECT_HANDLE(uintptr(a[3])), C.CK_BYTE_PTR(a[4]), C.CK_ULONG_PTR(a[5]))
	case C.COFFER_OP_UNWRAP_KEY:
		return goUnwrapKey(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_OBJECT_HANDLE(uintptr(a[2])), C.CK_BYTE_PTR(a[3]), C.CK_ULONG(uintptr(a[4])), C.CK_ATTRIBUTE_PTR(a[5]), C.CK_ULONG(uintptr(a[6])), C.CK_OBJECT_HANDLE_PTR(a[7]))
	case C.COFFER_OP_DERIVE_KEY:
		return goDeriveKey(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_MECHANISM_PTR(a[1]), C.CK_OBJECT_HANDLE(uintptr(a[2])), C.CK_ATTRIBUTE_PTR(a[3]), C.CK_ULONG(uintptr(a[4])), C.CK_OBJECT_HANDLE_PTR(a[5]))
	case C.COFFER_OP_GENERATE_RANDOM:
		return goGenerateRandom(C.CK_SESSION_HANDLE(uintptr(a[0])), C.CK_BYTE_PTR(a[1]), C.CK_ULONG(uintptr(a[2])))
	}
	return C.CKR_FUNCTION_NOT_SUPPORTED
}
