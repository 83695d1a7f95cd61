package main

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h), which package syscall
// does not name.
const ipBindAddressNoPort = 24

// bindAddressNoPort is the Dialer.Control of connections with a source address: the
// kernel then picks the source port at connect time, for the whole 4-tuple, instead of
// at bind time. Without it, a source address runs out of ports after ~28,000
// connections, and sockets in TIME_WAIT from an earlier run make every bind search
// long; with it, loopback reuses them (net.ipv4.tcp_tw_reuse = 2, the default).
func bindAddressNoPort(network, address string, c syscall.RawConn) error {
	var sockErr error
	err := c.Control(func(fd uintptr) {
		sockErr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return sockErr
}
