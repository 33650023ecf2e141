package gdpm

// ProgramForTests is the built testdata/gdpmtest for the black-box tests.
func ProgramForTests() string { return testProgram }
