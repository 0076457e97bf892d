package main

import "syscall"

// hsmProcAttr makes the kernel kill an HSM process if this test process
// dies without running its cleanups (a panic, go test's timeout), so no
// node outlives the test.
func hsmProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
