package transport_test

import (
	"testing"

	"github.com/resolverd/resolverd/internal/identity/identitytest"
)

// BenchmarkWarmAuthentication times one warm authenticated call of each kind through the
// Authenticator: an rsv_ bearer token, and a Kubernetes-shaped JWT already verified once (its
// verification is remembered until exp). docs/CONTRACT.md §3.1 promises the JWT costs under 5 µs of
// server CPU more; `make bench` prints the same figure (cmd/resolverd-bench/identitycost.go).
//
//	go test -run '^$' -bench WarmAuthentication ./internal/transport/
func BenchmarkWarmAuthentication(b *testing.B) {
	c, err := identitytest.NewAuthCost()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name string
		call func() error
	}{{"rsv", c.Bearer}, {"jwt", c.JWT}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
