//go:build !linux

package ws

import "net"

// sendQueue is the kernel's send queue of a connection, which only Linux lets the
// writer read: elsewhere a peer that stops reading blocks a write until the hub's
// sweep drops the connection (without a close frame).
type sendQueue struct{}

func newSendQueue(net.Conn) (sendQueue, bool) { return sendQueue{}, false }

func (sendQueue) queued() (int, bool) { return 0, false }
