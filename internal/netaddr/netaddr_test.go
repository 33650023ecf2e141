package netaddr

import "testing"

func TestIsLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8989": true,
		"127.1.2.3:0":    true,
		"[::1]:8989":     true,
		"localhost:8989": true,
		":8989":          false, // every interface
		"0.0.0.0:8989":   false,
		"10.0.0.1:8989":  false,
		"example.com:80": false,
		"127.0.0.1":      false, // no port: not a listen address
		"LOCALHOST:1":    false, // listen addresses are not case-folded by net
		"":               false,
	} {
		if got := IsLoopbackListen(addr); got != want {
			t.Errorf("IsLoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1":          true,
		"127.0.0.1:8989":     true,
		"localhost":          true,
		"LocalHost:8989":     true,
		"app.localhost:8989": true,
		"[::1]:8989":         true,
		"[::1]":              true,
		"::1":                true,
		"evil.com":           false,
		"localhost.evil.com": false,
		"10.0.0.1:8989":      false,
		"":                   false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
