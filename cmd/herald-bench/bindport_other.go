//go:build !linux

package main

import "syscall"

// bindAddressNoPort does nothing where IP_BIND_ADDRESS_NO_PORT does not exist.
func bindAddressNoPort(network, address string, c syscall.RawConn) error { return nil }
