package main

import (
	"fmt"
	"io"
	"testing"

	"github.com/resolverd/resolverd/internal/identity/identitytest"
)

// reportIdentityCost prints, on one line, what a warm JWT call costs on top of a warm rsv_ call:
// one authentication of each through the production Authenticator, one core, timed with
// testing.Benchmark (the same calls as BenchmarkWarmAuthentication in internal/transport). The
// JWT is a Kubernetes-shaped RS256 token, verified once and then remembered until its exp.
// docs/CONTRACT.md §3.1 sets the target: under 5 µs.
func reportIdentityCost(w io.Writer) {
	c, err := identitytest.NewAuthCost()
	if err != nil {
		fmt.Fprintf(w, "%-50s %-39s %s\n", "warm JWT call - warm rsv_ call (server CPU)", "not measured: "+err.Error(), "< 5 µs")
		return
	}
	defer c.Close()
	per := func(call func() error) float64 {
		r := testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
		})
		if r.N == 0 {
			return 0
		}
		return float64(r.T.Nanoseconds()) / float64(r.N) / 1e3
	}
	bearer, jwt := per(c.Bearer), per(c.JWT)
	fmt.Fprintf(w, "%-50s %-39s %s\n", "warm JWT call - warm rsv_ call (server CPU)",
		fmt.Sprintf("%+.2f µs (JWT %.2f µs, rsv_ %.2f µs)", jwt-bearer, jwt, bearer), "< 5 µs")
}
