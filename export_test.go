package gdpm

// testProgram is the path of testdata/gdpmtest, built once for the run by
// TestMain (main_test.go, in package gdpm_test, which the test kit needs).
var testProgram string

// SetProgramForTests is how TestMain hands the built program to the
// package's own tests.
func SetProgramForTests(path string) { testProgram = path }

// ProgramForTests is the built testdata/gdpmtest for the black-box tests.
func ProgramForTests() string { return testProgram }

// CgroupVersionForTests is the cgroup version this host enforces limits
// with, "" when none.
func CgroupVersionForTests() string { return cgroupVersion() }
