// Package validate checks the deployment files under deploy/ offline: no cluster, no Docker, no
// network once the Go modules are downloaded.
//
//	cd deploy/validate && go test ./...
//
// It is its own Go module so that the Kubernetes, kustomize, compose and BuildKit libraries it
// uses never become dependencies of resolverd (the nested go.mod also keeps it out of the main
// module's ./...).
//
// What it checks:
//
//   - Every YAML document in kubernetes/base decodes STRICTLY into the Kubernetes API type of its
//     apiVersion/kind (k8s.io/api v0.37.2): an unknown or misspelt field, a field in the wrong case
//     (`Replicas:`), a duplicate key or a value of the wrong type fails, and so does a kind this
//     base is not expected to hold (a Secret above all).
//   - kustomization.yaml lists exactly the manifest files there are, and `kustomize build` (the
//     kustomize library itself) succeeds; its output decodes strictly too and keeps every selector
//     as written.
//   - The invariants that matter in production: 3 replicas rolling with maxUnavailable 0; gRPC
//     health probes that reach the container's gRPC port and can actually talk to it (over TLS,
//     with a client certificate, when the server requires one); a liveness probe that tolerates a
//     database outage for a while; non-root, read-only root filesystem, no privilege escalation,
//     no capabilities; the database URL and encryption keys from Secret references and no literal
//     secret in any env var; every RESOLVER_* variable a real flag of its command; the headless
//     Service, PDB, HPA and NetworkPolicy aimed at the Deployment's pods; the Job running
//     `migrate up` with the same image.
//   - kubernetes/overlays/workload-identity: its kustomization names exactly the files there are and
//     builds on the whole base; the build decodes strictly; resolverd accepts JWTs (issuer and
//     audience both set, keys over https, egress to 443, no client CA required) and keeps the base's
//     probes, security and Secret references; the example worker mounts a projected token whose
//     audience is resolverd's, read-only where RESOLVER_TOKEN_FILE says, and the NetworkPolicy
//     admits it.
//   - docker-compose.yaml: the three services, migrate running `migrate up` once before serve,
//     loaded and schema-validated by compose-go, the loader docker compose itself uses.
//   - The Dockerfile, parsed by BuildKit's own parser: a static (CGO_ENABLED=0) build of
//     ./cmd/resolverd, grpc-health-probe installed and copied, a final stage running as a non-zero
//     uid, and a build context (Dockerfile.dockerignore) that leaves .resolverd/ out.
//
// One file per concern: decode_test.go, kustomize_test.go, deployment_test.go, service_test.go,
// scaling_test.go (PDB and HPA), network_policy_test.go, migration_test.go, overlay_test.go,
// compose_test.go and dockerfile_test.go; this file holds the paths and the helpers they share.
package validate

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	baseDir        = "../kubernetes/base"
	composeFile    = "../docker-compose.yaml"
	dockerfilePath = "../Dockerfile"
	ignorePath     = "../Dockerfile.dockerignore"
	repoRoot       = "../.."

	appLabel  = "app.kubernetes.io/name"
	appName   = "resolverd"
	grpcPort  = 50051
	metricsPt = 9090
	probeBin  = "/grpc-health-probe"
)

// The helpers below are shared by the checks of the other files.

func objectMeta(obj any) metav1.ObjectMeta {
	v, ok := obj.(interface{ GetObjectMeta() metav1.Object })
	if !ok {
		return metav1.ObjectMeta{}
	}
	m := v.GetObjectMeta()
	return metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), Labels: m.GetLabels()}
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func selects(sel *metav1.LabelSelector, labels map[string]string) bool {
	return sel != nil && len(sel.MatchExpressions) == 0 && subset(sel.MatchLabels, labels)
}

func intOrStringIs(v *intstr.IntOrString, n int) bool {
	return v != nil && v.Type == intstr.Int && v.IntValue() == n
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func envValue(c *corev1.Container, name string) string {
	if ev := envVar(c, name); ev != nil {
		return ev.Value
	}
	return ""
}

// portOf reads the port of host:port or :port.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Errorf("%q has no port", addr)
		return 0
	}
	n, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		t.Errorf("%q: bad port", addr)
	}
	return n
}

// parseGoMemLimit reads a GOMEMLIMIT value: a byte count with an optional B, KiB, MiB, GiB or TiB.
func parseGoMemLimit(t *testing.T, s string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				t.Fatalf("GOMEMLIMIT %q: %v", s, err)
			}
			return n * u.mult
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("GOMEMLIMIT %q: not a byte count (Go accepts B, KiB, MiB, GiB, TiB; not Mi or MB)", s)
	}
	return n
}

func jsonEqual(a, b any) bool { return mustJSON(a) == mustJSON(b) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func sortedKeys[K interface{ ~string | ~int32 }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
