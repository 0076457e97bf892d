//go:build !linux

package main

import "syscall"

func hsmProcAttr() *syscall.SysProcAttr { return nil }
