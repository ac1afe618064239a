package admin_test

import (
	"testing"

	"github.com/resolverd/resolverd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
