package gdpm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateForLogs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{strings.Repeat("x", 900<<10), 4, "xxxx…(921600 bytes)"},
		// Never half a rune: "é" is two bytes.
		{"aéé", 2, "a…(5 bytes)"},
	} {
		got := truncate(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%d bytes, %d) = %q, want %q", len(tc.in), tc.n, got, tc.want)
		}
	}
	if got := logValue(strings.Repeat("c", 900<<10)); len(got) > maxLogValue+32 {
		t.Errorf("a 900 KB value is logged as %d bytes", len(got))
	}
}

func TestCheckSpecSizeAtTheLimits(t *testing.T) {
	ok := Spec{
		Command: strings.Repeat("c", MaxCommandBytes),
		Dir:     "/" + strings.Repeat("d", MaxDirBytes-1),
		Env:     map[string]string{strings.Repeat("N", MaxEnvNameBytes): strings.Repeat("v", MaxEnvValueBytes-MaxEnvNameBytes)},
	}
	if err := checkSpecSize(ok); err != nil {
		t.Fatalf("a spec at the limits is refused: %v", err)
	}
	over := ok
	over.Command += "c"
	if err := checkSpecSize(over); err == nil || !strings.Contains(err.Error(), "MaxCommandBytes") {
		t.Fatalf("one byte over MaxCommandBytes: %v", err)
	}
}
