//go:build linux

package main

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// peerCredentials reports whether peerUID can tell who is connecting.
const peerCredentials = true

// peerUID returns the user ID of the process at the other end of a Unix
// socket connection, from SO_PEERCRED (unix(7)).
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a Unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}
