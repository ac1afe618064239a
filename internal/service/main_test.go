package service_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind. The tests here are unit tests
// and none needs PostgreSQL: the end-to-end suites, which start the whole server, are in
// internal/e2e.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
