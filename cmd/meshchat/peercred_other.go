//go:build !linux

package main

import "net"

// peerCredentials reports whether peerUID can tell who is connecting: not on
// this platform, where the socket's mode (0600) and its directory's (0700)
// alone keep other users out.
const peerCredentials = false

// peerUID is not available on this platform.
func peerUID(net.Conn) (int, error) { return -1, nil }
