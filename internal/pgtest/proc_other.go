//go:build unix && !linux

package pgtest

import "syscall"

// procAttr starts initdb and postgres with cred (nil: as ourselves), in a process group
// of their own so that a terminal's Ctrl-C reaches only the test binary. Without Linux's
// parent-death signal, a test binary that dies without reaching Main's cleanup leaves
// postgres running.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
