package pgtest

import "syscall"

// procAttr starts initdb and postgres with cred (nil: as ourselves), in a process group
// of their own so that a terminal's Ctrl-C reaches only the test binary, and with a
// parent-death signal: if the test binary dies without closing the server (a panic, a
// test timeout, SIGKILL), postgres gets SIGQUIT (immediate shutdown) instead of running on.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
}
