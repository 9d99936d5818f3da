package c

import "testing"

func TestAllFine(t *testing.T) {
	for _, name := range []string{"x", "y"} {
		t.Run(name, func(t *testing.T) { t.Parallel() })
	}
}
