//go:build !linux

package main

import "syscall"

// serverProcAttr starts the server as the bench's child with nothing more: only Linux
// has a parent-death signal.
func serverProcAttr() *syscall.SysProcAttr { return nil }
