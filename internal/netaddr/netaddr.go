// Package netaddr answers the one question about addresses that the
// library and the binaries both ask: does this address stay on this
// machine? The master refuses to serve a non-loopback address without a
// token, the browser checks refuse foreign Host headers, and gdpm-master's
// flags refuse to listen off loopback unsecured; one answer for all three.
package netaddr

import (
	"net"
	"strings"
)

// IsLoopbackListen reports whether a listen address (host:port) binds
// loopback only. An empty host ("":8989, all interfaces) and a name other
// than localhost are not loopback: a name can resolve anywhere.
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return isLoopbackName(host)
}

// IsLoopbackHost reports whether a Host header (host or host:port, any
// case, an IPv6 address bracketed or not) names this machine by a
// loopback name or address; *.localhost counts (RFC 6761).
func IsLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(host), "["), "]")
	return isLoopbackName(host) || strings.HasSuffix(host, ".localhost")
}

func isLoopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
