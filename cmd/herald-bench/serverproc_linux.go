package main

import "syscall"

// serverProcAttr starts the server with a parent-death signal: if the bench dies
// without stopping it (SIGKILL, a crash), the server gets SIGTERM instead of running on.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
