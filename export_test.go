package gdpm

// ProgramForTests is the built testdata/gdpmtest for the black-box tests.
func ProgramForTests() string { return testProgram }

// CgroupVersionForTests is the cgroup version this host enforces limits
// with, "" when none.
func CgroupVersionForTests() string { return cgroupVersion() }
