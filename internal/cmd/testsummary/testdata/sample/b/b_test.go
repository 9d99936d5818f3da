package b

import "testing"

func TestNeedsChromium(t *testing.T) {
	t.Skipf("browser test needs %s", "Chromium (Debian package chromium)")
}

func TestOwnReason(t *testing.T) { t.Skip("only on Tuesdays") }

func TestFails(t *testing.T) {
	t.Log("what went wrong, shown")
	t.Error("wrong answer")
}
