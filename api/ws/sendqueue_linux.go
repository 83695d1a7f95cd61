package ws

import (
	"net"
	"syscall"
	"unsafe"
)

// sendQueue reads how many bytes a TCP connection's kernel send queue holds (written,
// not yet acknowledged by the peer: SIOCOUTQ), and fixes its size.
type sendQueue struct {
	raw syscall.RawConn
}

// newSendQueue returns the send queue of c, with the kernel's buffer fixed at
// sendBuffer (which also ends the kernel's growing it, up to 4 MiB, for a peer that
// does not read); ok is false for a connection that is not TCP.
func newSendQueue(c net.Conn) (q sendQueue, ok bool) {
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return sendQueue{}, false
	}
	if _, isTCP := c.(*net.TCPConn); !isTCP {
		return sendQueue{}, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return sendQueue{}, false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sendBuffer)
	}); err != nil || serr != nil {
		return sendQueue{}, false
	}
	return sendQueue{raw: raw}, true
}

// queued returns the bytes in the send queue; ok is false when it cannot be read (the
// connection is closed).
func (q sendQueue) queued() (n int, ok bool) {
	var v int32
	var errno syscall.Errno
	err := q.raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v)))
	})
	if err != nil || errno != 0 {
		return 0, false
	}
	return int(v), true
}
