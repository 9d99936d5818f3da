package sse

import (
	"os"
	"testing"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
