package gdpm

// cgroupVersion says which cgroup version enforces limits on this host:
// "v2", "v1", or "" when none is writable (cgroup.go grows with limits).
func cgroupVersion() string { return "" }
