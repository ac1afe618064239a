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
//   - docker-compose.yaml: the three services, migrate running `migrate up` once before serve,
//     loaded and schema-validated by compose-go, the loader docker compose itself uses.
//   - The Dockerfile, parsed by BuildKit's own parser: a static (CGO_ENABLED=0) build of
//     ./cmd/resolverd, grpc-health-probe installed and copied, a final stage running as a non-zero
//     uid, and a build context (Dockerfile.dockerignore) that leaves .resolverd/ out.
package validate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
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

// ---------------------------------------------------------------------------------------------
// Strict decoding

// kinds maps each apiVersion/kind this base may hold to its Go type. Anything else fails, a Secret
// or ConfigMap in particular: values of Secrets never live in this repository.
var kinds = map[string]func() any{
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// decodeStrict decodes JSON into v, refusing unknown fields (json.Decoder.DisallowUnknownFields),
// and then again with the API server's own strict rules (sigs.k8s.io/json): field names are
// case-sensitive there, where encoding/json would take `Replicas` for `replicas`, and duplicate
// fields are errors.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	strictErrs, err := kjson.UnmarshalStrict(data, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// object is one decoded manifest document.
type object struct {
	file  string // base name, e.g. deployment.yaml
	index int    // document index within the file
	kind  string // apiVersion/kind
	obj   any    // *appsv1.Deployment, ...
}

func (o object) String() string { return fmt.Sprintf("%s#%d (%s)", o.file, o.index, o.kind) }

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// decodeDocuments splits a YAML stream on `---` lines and decodes every non-empty document
// strictly into the API type of its apiVersion/kind.
func decodeDocuments(name string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		// YAMLToJSONStrict: a duplicate key is an error, not "the last one wins".
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s#%d: not valid YAML: %w", name, i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			continue // only comments
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("%s#%d: %w", name, i, err)
		}
		kind := tm.APIVersion + "/" + tm.Kind
		newObj, ok := kinds[kind]
		if !ok {
			if tm.Kind == "Secret" {
				return nil, fmt.Errorf("%s#%d: a Secret: Secrets are created out of band (deploy/README.md), never committed", name, i)
			}
			return nil, fmt.Errorf("%s#%d: unexpected kind %q (apiVersion %q): add it to the kinds table if it belongs here", name, i, tm.Kind, tm.APIVersion)
		}
		obj := newObj()
		if err := decodeStrict(js, obj); err != nil {
			return nil, fmt.Errorf("%s#%d (%s): %w", name, i, kind, err)
		}
		out = append(out, object{file: name, index: i, kind: kind, obj: obj})
	}
	return out, nil
}

// manifestFiles lists the manifest files of the base (every *.yaml/*.yml but kustomization.yaml).
func manifestFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == "kustomization.yaml" || n == "kustomization.yml" || n == "Kustomization" {
			continue
		}
		if ext := filepath.Ext(n); ext == ".yaml" || ext == ".yml" {
			files = append(files, n)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", baseDir)
	}
	return files
}

// loadBase decodes every manifest of the base; any decoding error fails the test.
func loadBase(t *testing.T) []object {
	t.Helper()
	var all []object
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(filepath.Join(baseDir, f))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeDocuments(f, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", f)
		}
		all = append(all, objs...)
	}
	return all
}

// only returns the single object of type T, failing unless there is exactly one.
func only[T any](t *testing.T, objs []object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T in the base, found %d", zero, len(found))
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadBase(t)
	seen := map[string]string{}
	for _, o := range objs {
		meta := objectMeta(o.obj)
		if meta.Name == "" {
			t.Errorf("%s: no metadata.name", o)
		}
		if meta.Namespace != "" {
			t.Errorf("%s: metadata.namespace %q: the base is namespace-free (set it in an overlay)", o, meta.Namespace)
		}
		if meta.Labels[appLabel] != appName {
			t.Errorf("%s: label %s=%s missing", o, appLabel, appName)
		}
		key := o.kind + "/" + meta.Name
		if prev, dup := seen[key]; dup {
			t.Errorf("%s: %s already defined in %s", o, key, prev)
		}
		seen[key] = o.String()
	}
	t.Logf("%d objects decoded strictly: %s", len(objs), strings.Join(sortedKeys(seen), ", "))
}

// TestStrictDecoderRejects makes sure the decoder above is as strict as it claims: a validator
// that accepts everything would make every other test meaningless.
func TestStrictDecoderRejects(t *testing.T) {
	cases := map[string]string{
		"unknown field":           "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 3}\n",
		"field in the wrong case": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {Replicas: 3}\n",
		"duplicate key":           "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: None\n  clusterIP: 10.0.0.1\n",
		"wrong type":              "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: three}\n",
		"unknown nested field":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n  - {port: 1, targetPort: 1, protcol: TCP}\n",
		"unknown kind":            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
		"a Secret":                "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {url: postgres://u:p@h/db}\n",
		"wrong apiVersion":        "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\n",
	}
	for name, doc := range cases {
		if _, err := decodeDocuments("case.yaml", []byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := "# comment only\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n---\n"
	if objs, err := decodeDocuments("ok.yaml", []byte(ok)); err != nil || len(objs) != 1 {
		t.Errorf("valid stream: %d objects, %v", len(objs), err)
	}
}

// ---------------------------------------------------------------------------------------------
// Kustomization

func readKustomization(t *testing.T) ktypes.Kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(baseDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k ktypes.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	k := readKustomization(t)
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Errorf("kustomization.yaml: apiVersion/kind %s/%s", k.APIVersion, k.Kind)
	}
	if len(k.CommonLabels) > 0 {
		t.Errorf("commonLabels also rewrites selectors, NetworkPolicy peers included: use labels with includeSelectors: false")
	}
	if k.Namespace != "" {
		t.Errorf("namespace %q: the base is namespace-free", k.Namespace)
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		if listed[r] {
			t.Errorf("resource %s listed twice", r)
		}
		listed[r] = true
		if _, err := os.Stat(filepath.Join(baseDir, r)); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}
	for _, f := range manifestFiles(t) {
		if !listed[f] {
			t.Errorf("%s is in the base directory but not in kustomization.yaml resources", f)
		}
	}
	var labelled bool
	for _, l := range k.Labels {
		if l.Pairs[appLabel] == appName {
			labelled = true
			if l.IncludeSelectors {
				t.Errorf("labels with includeSelectors: true rewrites selectors (NetworkPolicy peers included)")
			}
		}
	}
	if !labelled {
		t.Errorf("kustomization.yaml does not label everything %s=%s", appLabel, appName)
	}
}

// TestKustomizeBuild runs kustomize (the library behind `kubectl apply -k`) on the base and
// checks that what would be applied is what the files say: same objects, labels on everything,
// selectors untouched.
func TestKustomizeBuild(t *testing.T) {
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	built, err := decodeDocuments("kustomize build", out)
	if err != nil {
		t.Fatalf("the kustomize output does not decode strictly: %v", err)
	}
	raw := loadBase(t)
	if len(built) != len(raw) {
		t.Fatalf("kustomize build produced %d objects, the files hold %d", len(built), len(raw))
	}
	for _, o := range built {
		if objectMeta(o.obj).Labels[appLabel] != appName {
			t.Errorf("built %s: no %s label", o, appLabel)
		}
	}
	// Selectors are written in the manifests; the build must not have changed any of them.
	np := only[*networkingv1.NetworkPolicy](t, built)
	rawNP := only[*networkingv1.NetworkPolicy](t, raw)
	if !jsonEqual(np.Spec, rawNP.Spec) {
		t.Errorf("kustomize changed the NetworkPolicy spec (selectors?):\nfile:  %s\nbuilt: %s", mustJSON(rawNP.Spec), mustJSON(np.Spec))
	}
	d, rawD := only[*appsv1.Deployment](t, built), only[*appsv1.Deployment](t, raw)
	if !jsonEqual(d.Spec.Selector, rawD.Spec.Selector) {
		t.Errorf("kustomize changed the Deployment selector: %s -> %s", mustJSON(rawD.Spec.Selector), mustJSON(d.Spec.Selector))
	}
	if d.Spec.Template.Labels[appLabel] != appName {
		t.Errorf("built Deployment: pod template without %s", appLabel)
	}
}

// ---------------------------------------------------------------------------------------------
// Deployment

func serverContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == appName {
			return c
		}
	}
	t.Fatalf("Deployment %s: no container named %s", d.Name, appName)
	return nil
}

func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s: no port named %q", c.Name, name)
	return 0
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func TestDeployment(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	spec := d.Spec
	pod := spec.Template.Spec
	c := serverContainer(t, d)

	if spec.Replicas == nil || *spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", deref(spec.Replicas))
	}
	if spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || spec.Strategy.RollingUpdate == nil {
		t.Fatalf("strategy %q: want RollingUpdate", spec.Strategy.Type)
	}
	if ru := spec.Strategy.RollingUpdate; !intOrStringIs(ru.MaxUnavailable, 0) || !intOrStringIs(ru.MaxSurge, 1) {
		t.Errorf("rollingUpdate maxUnavailable %v maxSurge %v, want 0 and 1", ru.MaxUnavailable, ru.MaxSurge)
	}
	if spec.Selector == nil || len(spec.Selector.MatchExpressions) > 0 || !subset(spec.Selector.MatchLabels, spec.Template.Labels) {
		t.Errorf("selector %v does not select the pod template's labels %v", spec.Selector, spec.Template.Labels)
	}
	if !slices.Equal(c.Args, []string{"serve"}) || len(c.Command) > 0 {
		t.Errorf("container command %q args %q: want the image's entrypoint with args [serve]", c.Command, c.Args)
	}
	if p := containerPort(t, c, "grpc"); p != grpcPort {
		t.Errorf("grpc port %d, want %d", p, grpcPort)
	}
	if p := containerPort(t, c, "metrics"); p != metricsPt {
		t.Errorf("metrics port %d, want %d", p, metricsPt)
	}
	if ev := envVar(c, "RESOLVER_LISTEN"); ev != nil && portOf(t, ev.Value) != grpcPort {
		t.Errorf("RESOLVER_LISTEN %q does not listen on the grpc port %d", ev.Value, grpcPort)
	}
	if ev := envVar(c, "RESOLVER_METRICS_LISTEN"); ev == nil || portOf(t, ev.Value) != metricsPt {
		t.Errorf("RESOLVER_METRICS_LISTEN must be set to the metrics port %d", metricsPt)
	}

	t.Run("probes", func(t *testing.T) { checkProbes(t, c) })
	t.Run("security", func(t *testing.T) {
		checkPodSecurity(t, "Deployment", &pod)
		checkContainerSecurity(t, "Deployment", c)
	})
	t.Run("env", func(t *testing.T) {
		checkEnv(t, "Deployment", c, serveFlags(t))
		for name, ref := range map[string][2]string{
			"RESOLVER_DATABASE_URL":    {"resolverd-database", "url"},
			"RESOLVER_ENCRYPTION_KEYS": {"resolverd-encryption", "keys"},
		} {
			requireSecretRef(t, c, name, ref[0], ref[1])
		}
		checkTLSFiles(t, &pod, c)
	})
	t.Run("resources", func(t *testing.T) {
		want := map[string]map[corev1.ResourceName]string{
			"requests": {corev1.ResourceCPU: "250m", corev1.ResourceMemory: "256Mi"},
			"limits":   {corev1.ResourceCPU: "1", corev1.ResourceMemory: "512Mi"},
		}
		for kind, list := range map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
			for name, v := range want[kind] {
				q, ok := list[name]
				if !ok || q.String() != v {
					t.Errorf("resources.%s.%s = %v, want %s", kind, name, q.String(), v)
				}
			}
		}
		// GOMEMLIMIT, when set, must leave the GC headroom below the container's memory limit.
		if ev := envVar(c, "GOMEMLIMIT"); ev != nil {
			limit := c.Resources.Limits.Memory().Value()
			soft := parseGoMemLimit(t, ev.Value)
			if soft >= limit || soft < limit*7/10 {
				t.Errorf("GOMEMLIMIT %s (%d bytes) should be 70-99%% of the memory limit (%d bytes)", ev.Value, soft, limit)
			}
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		grace := deref(pod.TerminationGracePeriodSeconds)
		if grace != 30 {
			t.Errorf("terminationGracePeriodSeconds = %d, want 30", grace)
		}
		// serve: up to 10 s of GracefulStop, then up to 10 s of audit flush (cmd/resolverd/serve.go,
		// internal/server); a preStop sleep comes before both.
		var sleep int64
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			if c.Lifecycle.PreStop.Exec != nil {
				t.Errorf("preStop exec %q: the distroless image has no shell or sleep binary", c.Lifecycle.PreStop.Exec.Command)
			}
			if c.Lifecycle.PreStop.Sleep != nil {
				sleep = c.Lifecycle.PreStop.Sleep.Seconds
			}
		}
		if sleep+20 > grace {
			t.Errorf("terminationGracePeriodSeconds %d < preStop %d s + 20 s of serve shutdown", grace, sleep)
		}
	})
	t.Run("placement", func(t *testing.T) {
		keys := map[string]bool{}
		for _, tsc := range pod.TopologySpreadConstraints {
			keys[tsc.TopologyKey] = true
			if tsc.LabelSelector == nil || !subset(tsc.LabelSelector.MatchLabels, spec.Template.Labels) || len(tsc.LabelSelector.MatchLabels) == 0 {
				t.Errorf("topology spread on %s: its selector does not select this Deployment's pods", tsc.TopologyKey)
			}
		}
		for _, k := range []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"} {
			if !keys[k] {
				t.Errorf("no topologySpreadConstraint on %s", k)
			}
		}
	})
	t.Run("scraping", func(t *testing.T) {
		a := spec.Template.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(metricsPt) {
			t.Errorf("prometheus annotations %v: want scrape true on port %d", a, metricsPt)
		}
	})
	t.Run("service account", func(t *testing.T) {
		checkServiceAccount(t, objs, "Deployment", &pod)
	})
}

// checkProbes holds the Deployment to native gRPC probes (the kubelet's own grpc.health.v1 Check,
// issue 6) that can actually succeed. The kubelet's probe speaks plaintext and cannot present a
// client certificate, so with TLS on the serving port it must target the health-only listener
// (RESOLVER_HEALTH_LISTEN, plaintext, health alone), on a container port of its own that no Service
// publishes and the NetworkPolicy does not open (traffic from the pod's own node, which is where
// probes come from, is always allowed).
func checkProbes(t *testing.T, c *corev1.Container) {
	grpc := containerPort(t, c, "grpc")
	plaintext := false
	if ev := envVar(c, "RESOLVER_PLAINTEXT"); ev != nil {
		plaintext, _ = strconv.ParseBool(ev.Value)
	}
	if !plaintext && (envValue(c, "RESOLVER_TLS_CERT") == "" || envValue(c, "RESOLVER_TLS_KEY") == "") {
		t.Errorf("serve refuses to start without TLS unless RESOLVER_PLAINTEXT=true: set RESOLVER_TLS_CERT and RESOLVER_TLS_KEY")
	}
	// The port a plaintext probe may use: the serving port if it is plaintext, else the health-only one.
	probePort := grpc
	if !plaintext {
		hl := envValue(c, "RESOLVER_HEALTH_LISTEN")
		if hl == "" {
			t.Fatalf("the serving port is TLS, which the kubelet's gRPC probe cannot speak: set RESOLVER_HEALTH_LISTEN and probe that port")
		}
		probePort = int32(portOf(t, hl))
		if hp := containerPort(t, c, "health"); hp != probePort {
			t.Errorf("RESOLVER_HEALTH_LISTEN is port %d, the container port named health is %d", probePort, hp)
		}
	}

	probes := map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe}
	for what, p := range probes {
		if p == nil {
			t.Errorf("%s: missing", what)
			continue
		}
		if p.GRPC == nil {
			t.Errorf("%s: not the kubelet's native gRPC probe", what)
			continue
		}
		if p.GRPC.Port != probePort {
			t.Errorf("%s: checks port %d; the plaintext health port is %d", what, p.GRPC.Port, probePort)
		}
		// Readiness and startup ask about the whole server (""), which is NOT_SERVING while the
		// database is down; liveness asks about resolverd.liveness (internal/server.LivenessService),
		// SERVING while the process serves, so a database outage never restarts pods.
		wantService := ""
		if what == "livenessProbe" {
			wantService = "resolverd.liveness"
		}
		if got := deref(p.GRPC.Service); got != wantService {
			t.Errorf("%s: service %q, want %q", what, got, wantService)
		}
		if p.TimeoutSeconds < 2 {
			t.Errorf("%s: timeoutSeconds %d: a garbage-collection pause or a busy node fails it", what, p.TimeoutSeconds)
		}
	}
	r, l, s := c.ReadinessProbe, c.LivenessProbe, c.StartupProbe
	if r == nil || l == nil || s == nil {
		return
	}
	if r.PeriodSeconds != 5 || r.FailureThreshold != 2 {
		t.Errorf("readiness: period %d s x %d failures, want 5 x 2", r.PeriodSeconds, r.FailureThreshold)
	}
	if l.PeriodSeconds <= r.PeriodSeconds || l.FailureThreshold != 6 {
		t.Errorf("liveness: period %d s x %d failures, want a longer period than readiness and 6 failures", l.PeriodSeconds, l.FailureThreshold)
	}
	// Liveness must ride out a wedged-looking minute (a long GC pause, a starved node) before it
	// restarts a pod; restarting never fixes a database outage.
	if tol := l.PeriodSeconds * l.FailureThreshold; tol < 60 {
		t.Errorf("liveness restarts the pod after %d s of failed checks: want at least 60", tol)
	}
	if budget := s.PeriodSeconds * s.FailureThreshold; budget < 30 {
		t.Errorf("startupProbe allows only %d s to start", budget)
	}
}

func checkPodSecurity(t *testing.T, what string, pod *corev1.PodSpec) {
	sc := pod.SecurityContext
	if sc == nil {
		t.Fatalf("%s: no pod securityContext", what)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: runAsNonRoot is not true", what)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("%s: runAsUser 0", what)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile is not RuntimeDefault", what)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("%s: host namespaces", what)
	}
	if pod.AutomountServiceAccountToken != nil && *pod.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it does not need", what)
	}
}

func checkContainerSecurity(t *testing.T, what string, c *corev1.Container) {
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("%s/%s: no container securityContext", what, c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s/%s: readOnlyRootFilesystem is not true", what, c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s/%s: allowPrivilegeEscalation is not false", what, c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s/%s: privileged", what, c.Name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s/%s: capabilities must drop ALL and add none", what, c.Name)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("%s/%s: runAsUser 0", what, c.Name)
	}
}

// checkEnv: no literal secret anywhere, and every RESOLVER_* variable is a flag of the command.
func checkEnv(t *testing.T, what string, c *corev1.Container, flags map[string]bool) {
	if len(c.EnvFrom) > 0 {
		t.Errorf("%s: envFrom hides which variables are set; name each one", what)
	}
	seen := map[string]bool{}
	for _, ev := range c.Env {
		if seen[ev.Name] {
			t.Errorf("%s: %s set twice", what, ev.Name)
		}
		seen[ev.Name] = true
		if strings.HasPrefix(ev.Name, "RESOLVER_") && !flags[ev.Name] {
			t.Errorf("%s: %s is not the variable of any flag of this command (known: %s)", what, ev.Name, strings.Join(sortedKeys(flags), " "))
		}
		if ev.ValueFrom != nil && ev.ValueFrom.ConfigMapKeyRef != nil && looksSensitive(ev.Name) {
			t.Errorf("%s: %s comes from a ConfigMap; secrets belong in Secrets", what, ev.Name)
		}
		if ev.Value == "" {
			continue
		}
		if looksSensitive(ev.Name) && !strings.HasPrefix(ev.Value, "/") {
			t.Errorf("%s: %s holds a literal value; use a secretKeyRef", what, ev.Name)
		}
		if reason := literalSecret(ev.Value); reason != "" {
			t.Errorf("%s: %s holds %s; use a secretKeyRef", what, ev.Name, reason)
		}
	}
}

// looksSensitive: names whose values are secrets, not paths to them (RESOLVER_TLS_KEY is a path,
// which the caller allows by requiring values of such names to start with "/").
func looksSensitive(name string) bool { return sensitiveName.MatchString(name) }

var (
	sensitiveName = regexp.MustCompile(`(?i)(PASSWORD|PASSWD|SECRET|TOKEN|DATABASE_URL|ENCRYPTION_KEYS|API_KEY|_KEY|_KEYS|DSN)$`)
	passwordParam = regexp.MustCompile(`(?i)(password|sslpassword)=`)
)

// literalSecret recognises values that are secrets whatever the variable is called.
func literalSecret(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return "a URL with a password"
		}
	}
	if passwordParam.MatchString(v) {
		return "a password parameter"
	}
	for _, part := range strings.Split(v, ",") {
		if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(part)); err == nil && len(b) == 32 {
			return "what looks like an encryption key (32 bytes of base64)"
		}
	}
	if strings.Contains(v, "-----BEGIN") {
		return "a PEM block"
	}
	return ""
}

func requireSecretRef(t *testing.T, c *corev1.Container, name, secret, key string) {
	ev := envVar(c, name)
	switch {
	case ev == nil:
		t.Errorf("%s is not set", name)
	case ev.Value != "" || ev.ValueFrom == nil || ev.ValueFrom.SecretKeyRef == nil:
		t.Errorf("%s must come from a secretKeyRef, not a literal value", name)
	case ev.ValueFrom.SecretKeyRef.Name != secret || ev.ValueFrom.SecretKeyRef.Key != key:
		t.Errorf("%s: secretKeyRef %s/%s, want %s/%s", name, ev.ValueFrom.SecretKeyRef.Name, ev.ValueFrom.SecretKeyRef.Key, secret, key)
	case ev.ValueFrom.SecretKeyRef.Optional != nil && *ev.ValueFrom.SecretKeyRef.Optional:
		t.Errorf("%s: an optional secretKeyRef would start serve without it", name)
	}
}

// checkTLSFiles: RESOLVER_TLS_* name files of a read-only mount of the resolverd-tls Secret.
func checkTLSFiles(t *testing.T, pod *corev1.PodSpec, c *corev1.Container) {
	files := map[string]string{"RESOLVER_TLS_CERT": "tls.crt", "RESOLVER_TLS_KEY": "tls.key", "RESOLVER_TLS_CLIENT_CA": "ca.crt"}
	for name, file := range files {
		path := envValue(c, name)
		if path == "" {
			t.Errorf("%s is not set", name)
			continue
		}
		var mount *corev1.VolumeMount
		for i := range c.VolumeMounts {
			if m := &c.VolumeMounts[i]; filepath.Dir(path) == filepath.Clean(m.MountPath) {
				mount = m
			}
		}
		if mount == nil {
			t.Errorf("%s=%s: no volume is mounted at %s", name, path, filepath.Dir(path))
			continue
		}
		if !mount.ReadOnly || mount.SubPath != "" {
			t.Errorf("volume mount %s: want readOnly and no subPath (renewed certificates must show up)", mount.Name)
		}
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == mount.Name {
				vol = &pod.Volumes[i]
			}
		}
		if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "resolverd-tls" {
			t.Errorf("%s=%s: the volume %s is not the Secret resolverd-tls", name, path, mount.Name)
			continue
		}
		if filepath.Base(path) != file {
			t.Errorf("%s=%s: want the %s key of the kubernetes.io/tls Secret", name, path, file)
		}
		if len(vol.Secret.Items) > 0 && !slices.ContainsFunc(vol.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == file }) {
			t.Errorf("volume %s: items leave out %s", vol.Name, file)
		}
		if m := vol.Secret.DefaultMode; m != nil && *m&0o007 != 0 {
			t.Errorf("volume %s: defaultMode %#o lets every user read the key", vol.Name, *m)
		}
	}
}

func checkServiceAccount(t *testing.T, objs []object, what string, pod *corev1.PodSpec) {
	sa := only[*corev1.ServiceAccount](t, objs)
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("%s: serviceAccountName %q, the base defines %q", what, pod.ServiceAccountName, sa.Name)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %s: automountServiceAccountToken must be false", sa.Name)
	}
}

// flagsOf reads the flag names a command defines from its source file in cmd/resolverd
// (f.string("name", ...), f.Int("name", ...), ...) and returns their RESOLVER_* variables.
func flagsOf(t *testing.T, file string, extra ...string) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "cmd/resolverd", file))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	re := regexp.MustCompile(`\bf\.(?:string|bool|int|duration|String|Bool|Int|Duration|Var)\((?:[^,"]*,\s*)?"([a-z0-9-]+)"`)
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		out[envName(m[1])] = true
	}
	if len(out) == 0 {
		t.Fatalf("found no flag in cmd/resolverd/%s", file)
	}
	for _, f := range extra {
		out[envName(f)] = true
	}
	return out
}

func envName(flag string) string {
	return "RESOLVER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// serveFlags: the flags of serve.go, plus those being added to serve alongside this deployment
// (metrics, TLS, tracing, rate limit, call timeout), which may not be in serve.go yet.
func serveFlags(t *testing.T) map[string]bool {
	return flagsOf(t, "serve.go", "metrics-listen", "tls-cert", "tls-key", "tls-client-ca", "plaintext",
		"otlp-endpoint", "rate-limit", "call-timeout")
}

// ---------------------------------------------------------------------------------------------
// Service, PDB, HPA, NetworkPolicy, Job

func TestHeadlessService(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	svc := only[*corev1.Service](t, objs)
	c := serverContainer(t, d)
	if svc.Name != appName {
		t.Errorf("Service %q: clients dial dns:///resolverd.<ns>.svc.cluster.local, so it must be named %s", svc.Name, appName)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service clusterIP %q, want None (headless, for client-side load balancing)", svc.Spec.ClusterIP)
	}
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service type %s", svc.Spec.Type)
	}
	if svc.Spec.PublishNotReadyAddresses {
		t.Errorf("publishNotReadyAddresses would hand clients pods that are not Ready")
	}
	if len(svc.Spec.Selector) == 0 || !subset(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the Deployment's pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	job := only[*batchv1.Job](t, objs)
	if subset(svc.Spec.Selector, job.Spec.Template.Labels) {
		t.Errorf("Service selector %v also selects the migration Job's pods", svc.Spec.Selector)
	}
	ports := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p
		// The health-only listener is plaintext and for the kubelet: clients have no use for it.
		if p.Port == 50052 || p.TargetPort.StrVal == "health" || p.TargetPort.IntVal == 50052 {
			t.Errorf("Service port %s publishes the plaintext health-only listener", p.Name)
		}
	}
	for name, want := range map[string]int32{"grpc": grpcPort, "metrics": metricsPt} {
		p, ok := ports[name]
		if !ok || p.Port != want {
			t.Errorf("Service port %s: %+v, want port %d", name, p, want)
			continue
		}
		target := p.TargetPort
		switch {
		case target.Type == intstr.String && containerPort(t, c, target.StrVal) != want:
			t.Errorf("Service port %s targets container port %q, which is not %d", name, target.StrVal, want)
		case target.Type == intstr.Int && target.IntVal != 0 && target.IntVal != want:
			t.Errorf("Service port %s targets %d", name, target.IntVal)
		}
	}
}

func TestPodDisruptionBudgetAndAutoscaler(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	pdb := only[*policyv1.PodDisruptionBudget](t, objs)
	hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, objs)

	if pdb.Spec.Selector == nil || !jsonEqual(pdb.Spec.Selector, d.Spec.Selector) {
		t.Errorf("PDB selector %s, want the Deployment's %s", mustJSON(pdb.Spec.Selector), mustJSON(d.Spec.Selector))
	}
	if !intOrStringIs(pdb.Spec.MinAvailable, 2) || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB minAvailable %v maxUnavailable %v, want minAvailable 2", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA targets %s %s %s, want apps/v1 Deployment %s", ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	if deref(hpa.Spec.MinReplicas) != 3 || hpa.Spec.MaxReplicas != 10 {
		t.Errorf("HPA %d..%d, want 3..10", deref(hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas)
	}
	// The PDB must leave room for at least one eviction at the HPA's floor.
	if min := pdb.Spec.MinAvailable; min != nil && min.Type == intstr.Int && min.IntVal >= deref(hpa.Spec.MinReplicas) {
		t.Errorf("PDB minAvailable %d >= HPA minReplicas %d: no node could ever be drained", min.IntVal, deref(hpa.Spec.MinReplicas))
	}
	if deref(d.Spec.Replicas) < deref(hpa.Spec.MinReplicas) {
		t.Errorf("Deployment replicas %d below the HPA floor %d", deref(d.Spec.Replicas), deref(hpa.Spec.MinReplicas))
	}
	var cpu bool
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && deref(m.Resource.Target.AverageUtilization) == 70 {
			cpu = true
		}
	}
	if !cpu {
		t.Errorf("HPA: no CPU utilization target of 70%%")
	}
	if _, ok := serverContainer(t, d).Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Errorf("a CPU utilization target needs a CPU request")
	}
}

func TestNetworkPolicy(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	job := only[*batchv1.Job](t, objs)
	np := only[*networkingv1.NetworkPolicy](t, objs)
	spec := np.Spec

	if !selects(&spec.PodSelector, d.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy podSelector %v does not select the Deployment's pods", spec.PodSelector.MatchLabels)
	}
	if !slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes %v: want Ingress and Egress", spec.PolicyTypes)
	}
	// Ingress: 50051 from chat workers only, 9090 from the monitoring namespace only, nothing else.
	allowed := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("an ingress rule without `from` admits every source: %s", mustJSON(rule))
		}
		if len(rule.Ports) == 0 {
			t.Errorf("an ingress rule without ports opens every port: %s", mustJSON(rule))
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.Type != intstr.Int {
				t.Errorf("ingress port %v: use the number", p.Port)
				continue
			}
			allowed[p.Port.IntVal] = append(allowed[p.Port.IntVal], rule.From...)
		}
	}
	if ports := sortedKeys(allowed); !slices.Equal(ports, []int32{metricsPt, grpcPort}) {
		t.Errorf("ingress opens ports %v, want %d and %d", ports, grpcPort, metricsPt)
	}
	for _, peer := range allowed[grpcPort] {
		if peer.PodSelector == nil || peer.PodSelector.MatchLabels["app.kubernetes.io/part-of"] != "chat-workers" || peer.IPBlock != nil {
			t.Errorf("port %d admits %s: want only pods labelled app.kubernetes.io/part-of=chat-workers", grpcPort, mustJSON(peer))
		}
		if peer.PodSelector != nil && peer.PodSelector.MatchLabels[appLabel] != "" {
			t.Errorf("port %d: the chat-workers selector also requires %s (commonLabels?): the workers would be locked out", grpcPort, appLabel)
		}
	}
	for _, peer := range allowed[metricsPt] {
		if peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" || peer.IPBlock != nil {
			t.Errorf("port %d admits %s: want only the monitoring namespace", metricsPt, mustJSON(peer))
		}
	}
	// Egress: DNS over UDP and TCP, PostgreSQL, OTLP.
	egress := map[string]bool{}
	for _, rule := range spec.Egress {
		for _, p := range rule.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			if p.Port != nil {
				egress[fmt.Sprintf("%s/%s", p.Port.String(), proto)] = true
			}
		}
		if len(rule.Ports) == 0 {
			t.Errorf("an egress rule without ports allows everything: %s", mustJSON(rule))
		}
	}
	for _, want := range []string{"53/UDP", "53/TCP", "5432/TCP", "4317/TCP"} {
		if !egress[want] {
			t.Errorf("egress does not allow %s", want)
		}
	}
	// The migration Job needs DNS and PostgreSQL; if the policy selects it, those must be open.
	if selects(&spec.PodSelector, job.Spec.Template.Labels) && !(egress["53/UDP"] && egress["5432/TCP"]) {
		t.Errorf("the policy selects the migration Job but blocks its database")
	}
}

func TestMigrationJob(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	job := only[*batchv1.Job](t, objs)
	pod := job.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("Job: %d containers, want 1", len(pod.Containers))
	}
	c := &pod.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate", "up"}) || (len(c.Command) > 0 && !slices.Equal(c.Command, []string{"/resolverd"})) {
		t.Errorf("Job runs command %q args %q, want `resolverd migrate up`", c.Command, c.Args)
	}
	if c.Image != serverContainer(t, d).Image {
		t.Errorf("Job image %q differs from the Deployment's %q: the migration must be the new version's", c.Image, serverContainer(t, d).Image)
	}
	if deref(job.Spec.BackoffLimit) != 2 {
		t.Errorf("backoffLimit %d, want 2", deref(job.Spec.BackoffLimit))
	}
	if job.Spec.TTLSecondsAfterFinished == nil || *job.Spec.TTLSecondsAfterFinished <= 0 {
		t.Errorf("ttlSecondsAfterFinished not set")
	}
	if p := deref(job.Spec.Parallelism); job.Spec.Parallelism != nil && p != 1 {
		t.Errorf("parallelism %d: one migration at a time", p)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy %q", pod.RestartPolicy)
	}
	requireSecretRef(t, c, "RESOLVER_DATABASE_URL", "resolverd-database", "url")
	checkEnv(t, "Job", c, flagsOf(t, "migrate.go"))
	checkPodSecurity(t, "Job", &pod)
	checkContainerSecurity(t, "Job", c)
	checkServiceAccount(t, objs, "Job", &pod)
	if subset(d.Spec.Selector.MatchLabels, job.Spec.Template.Labels) {
		t.Errorf("the Deployment's selector also matches the Job's pods")
	}
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yaml

// composeRaw is the part of the file read before compose interpolates anything.
type composeRaw struct {
	Services map[string]struct {
		Environment map[string]string `json:"environment"`
	} `json:"services"`
}

func loadCompose(t *testing.T, env map[string]string) (*composetypes.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), composetypes.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []composetypes.ConfigFile{{Filename: abs, Content: content}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("resolverd", true) })
}

func TestCompose(t *testing.T) {
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	// As plain YAML first: it parses, and the key requirement is written as ${VAR:?...}.
	var raw composeRaw
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatalf("docker-compose.yaml is not valid YAML: %v", err)
	}
	for _, name := range []string{"postgres", "migrate", "resolverd"} {
		if _, ok := raw.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	if v := raw.Services["resolverd"].Environment["RESOLVER_ENCRYPTION_KEYS"]; !strings.HasPrefix(v, "${RESOLVER_ENCRYPTION_KEYS:?") {
		t.Errorf("resolverd RESOLVER_ENCRYPTION_KEYS = %q, want ${RESOLVER_ENCRYPTION_KEYS:?...} (required, no default)", v)
	}

	// Then as docker compose loads it: schema validation, interpolation, anchors and merges.
	if _, err := loadCompose(t, map[string]string{}); err == nil || !strings.Contains(err.Error(), "RESOLVER_ENCRYPTION_KEYS") {
		t.Errorf("compose loads without RESOLVER_ENCRYPTION_KEYS (err %v)", err)
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	p, err := loadCompose(t, map[string]string{"RESOLVER_ENCRYPTION_KEYS": key})
	if err != nil {
		t.Fatalf("compose-go rejects docker-compose.yaml: %v", err)
	}
	pg, okP := p.Services["postgres"]
	mig, okM := p.Services["migrate"]
	srv, okS := p.Services["resolverd"]
	if !okP || !okM || !okS {
		t.Fatalf("services %v: want postgres, migrate, resolverd", sortedKeys(p.Services))
	}

	if !strings.HasPrefix(pg.Image, "postgres:15") {
		t.Errorf("postgres image %q, want postgres:15", pg.Image)
	}
	if pg.HealthCheck == nil || !slices.ContainsFunc(pg.HealthCheck.Test, func(s string) bool { return strings.Contains(s, "pg_isready") }) {
		t.Errorf("postgres has no pg_isready healthcheck")
	}
	var named bool
	for _, v := range pg.Volumes {
		if v.Type == composetypes.VolumeTypeVolume {
			if _, ok := p.Volumes[v.Source]; ok {
				named = true
			}
		}
	}
	if !named {
		t.Errorf("postgres data is not on a named volume")
	}

	if !slices.Equal(mig.Command, composetypes.ShellCommand{"migrate", "up"}) {
		t.Errorf("migrate command %q, want [migrate up]", mig.Command)
	}
	if mig.Restart != "no" && mig.Restart != "" {
		t.Errorf("migrate restart %q: a one-shot", mig.Restart)
	}
	if dep, ok := mig.DependsOn["postgres"]; !ok || dep.Condition != composetypes.ServiceConditionHealthy {
		t.Errorf("migrate must wait for postgres to be healthy (depends_on %v)", mig.DependsOn)
	}
	if env := mig.Environment["RESOLVER_DATABASE_URL"]; env == nil || *env == "" {
		t.Errorf("migrate has no RESOLVER_DATABASE_URL")
	}

	if len(srv.Command) == 0 || srv.Command[0] != "serve" || !slices.Contains(srv.Command, "--plaintext") {
		t.Errorf("resolverd command %q, want serve --plaintext", srv.Command)
	}
	if dep, ok := srv.DependsOn["migrate"]; !ok || dep.Condition != composetypes.ServiceConditionCompletedSuccessfully {
		t.Errorf("resolverd must wait for migrate to complete successfully (depends_on %v)", srv.DependsOn)
	}
	if env := srv.Environment["RESOLVER_ENCRYPTION_KEYS"]; env == nil || *env != key {
		t.Errorf("resolverd RESOLVER_ENCRYPTION_KEYS not taken from the environment")
	}
	if a, b := srv.Environment["RESOLVER_DATABASE_URL"], mig.Environment["RESOLVER_DATABASE_URL"]; a == nil || b == nil || *a != *b {
		t.Errorf("resolverd and migrate use different databases")
	}
	flags := serveFlags(t)
	for name := range srv.Environment {
		if strings.HasPrefix(name, "RESOLVER_") && !flags[name] {
			t.Errorf("resolverd: %s is not a serve flag's variable", name)
		}
	}
	published := map[uint32]bool{}
	for _, port := range srv.Ports {
		published[port.Target] = true
	}
	if !published[grpcPort] || !published[metricsPt] {
		t.Errorf("resolverd publishes %v, want %d and %d", srv.Ports, grpcPort, metricsPt)
	}
	hc := srv.HealthCheck
	if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" || hc.Test[1] != probeBin ||
		!slices.Contains(hc.Test, fmt.Sprintf("-addr=localhost:%d", grpcPort)) {
		t.Errorf("resolverd healthcheck %q: want [CMD %s -addr=localhost:%d ...] (exec form: no shell in the image)", testOf(hc), probeBin, grpcPort)
	}
	for name, s := range map[string]composetypes.ServiceConfig{"migrate": mig, "resolverd": srv} {
		if s.Image != srv.Image || s.Build == nil {
			t.Errorf("%s: image %q build %v: migrate and resolverd must run the same image, built here", name, s.Image, s.Build)
			continue
		}
		ctx, _ := filepath.Abs(repoRoot)
		if filepath.Clean(s.Build.Context) != ctx || filepath.ToSlash(s.Build.Dockerfile) != "deploy/Dockerfile" {
			t.Errorf("%s: build context %s dockerfile %s, want the repository root and deploy/Dockerfile", name, s.Build.Context, s.Build.Dockerfile)
		}
	}
}

func testOf(hc *composetypes.HealthCheckConfig) []string {
	if hc == nil {
		return nil
	}
	return hc.Test
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

type dockerfile struct {
	stages   []instructions.Stage
	metaArgs map[string]string
	lint     []string
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var df dockerfile
	for _, w := range res.Warnings {
		df.lint = append(df.lint, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		df.lint = append(df.lint, fmt.Sprintf("%s (line %d): %s", rule, line, msg))
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	df.stages = stages
	df.metaArgs = map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				df.metaArgs[kv.Key] = *kv.Value
			}
		}
	}
	return df
}

// expand replaces ${NAME} and $NAME with the defaults of the ARGs in scope.
func expand(s string, args map[string]string) string {
	return os.Expand(s, func(name string) string { return args[name] })
}

// stageArgs are the ARG defaults visible in a stage (global ones re-declared without a value
// keep theirs).
func (df dockerfile) stageArgs(s instructions.Stage) map[string]string {
	args := map[string]string{}
	for _, c := range s.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				switch {
				case kv.Value != nil:
					args[kv.Key] = *kv.Value
				default:
					args[kv.Key] = df.metaArgs[kv.Key]
				}
			}
		}
	}
	return args
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	for _, w := range df.lint {
		t.Errorf("Dockerfile lint: %s", w)
	}
	if len(df.stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a final stage", len(df.stages))
	}
	build, final := df.stages[0], df.stages[len(df.stages)-1]
	if base := expand(build.BaseName, df.metaArgs); !strings.HasPrefix(base, "golang:1.26") {
		t.Errorf("build stage FROM %s, want golang:1.26", base)
	}
	if base := final.BaseName; base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want distroless/static or scratch (a static binary needs nothing else)", base)
	}

	// The build stage: a static ./cmd/resolverd, grpc-health-probe installed.
	args := df.stageArgs(build)
	var runs []string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			runs = append(runs, expand(strings.Join(r.CmdLine, " "), args))
		}
	}
	var goBuild, probe bool
	for _, r := range runs {
		if strings.Contains(r, "go build") && strings.Contains(r, "./cmd/resolverd") {
			goBuild = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version="} {
				if !strings.Contains(r, want) {
					t.Errorf("the go build of ./cmd/resolverd lacks %s:\n%s", want, r)
				}
			}
		}
		if strings.Contains(r, "go install") && strings.Contains(r, "github.com/grpc-ecosystem/grpc-health-probe@v0.4.62") {
			probe = true
			if !strings.Contains(r, "CGO_ENABLED=0") {
				t.Errorf("grpc-health-probe is not built static (CGO_ENABLED=0): %s", r)
			}
		}
	}
	if !goBuild {
		t.Errorf("no RUN builds ./cmd/resolverd with go build")
	}
	if !probe {
		t.Errorf("no RUN installs github.com/grpc-ecosystem/grpc-health-probe@v0.4.62")
	}

	// No stage copies the whole context: .resolverd/ (tokens, encryption key) must never reach a layer.
	for _, s := range df.stages {
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == "" {
				for _, src := range cp.SourcePaths {
					if p := filepath.Clean(src); p == "." || p == "/" || strings.HasPrefix(p, ".resolverd") {
						t.Errorf("stage %s: COPY %s copies the whole build context (and .resolverd/ with it)", s.Name, src)
					}
				}
			}
			if _, ok := c.(*instructions.AddCommand); ok {
				t.Errorf("stage %s: ADD; use COPY", s.Name)
			}
		}
	}

	// The final stage.
	var user string
	copied := map[string]bool{}
	var entrypoint, cmd *instructions.ShellDependantCmdLine
	var expose []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CopyCommand:
			if c.From == build.Name {
				copied[c.DestPath] = true
			}
		case *instructions.EntrypointCommand:
			entrypoint = &c.ShellDependantCmdLine
		case *instructions.CmdCommand:
			cmd = &c.ShellDependantCmdLine
		case *instructions.ExposeCommand:
			expose = append(expose, c.Ports...)
		case *instructions.RunCommand:
			t.Errorf("final stage: RUN %q: a distroless/scratch stage has no shell", c.CmdLine)
		}
	}
	uid, gid, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("final stage USER %q: want a numeric non-zero uid (Kubernetes runAsNonRoot can only check a number)", user)
	}
	if gid != "" {
		if n, err := strconv.Atoi(gid); err != nil || n == 0 {
			t.Errorf("final stage USER %q: group 0", user)
		}
	}
	for _, want := range []string{"/resolverd", probeBin} {
		if !copied[want] {
			t.Errorf("final stage does not COPY --from=%s %s", build.Name, want)
		}
	}
	if entrypoint == nil || entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{"/resolverd"}) {
		t.Errorf("ENTRYPOINT must be [\"/resolverd\"] in exec form")
	}
	if cmd == nil || cmd.PrependShell || !slices.Equal(cmd.CmdLine, []string{"serve"}) {
		t.Errorf("CMD must be [\"serve\"] in exec form")
	}
	slices.Sort(expose)
	if want := []string{strconv.Itoa(grpcPort), strconv.Itoa(metricsPt)}; !slices.Equal(expose, want) {
		t.Errorf("EXPOSE %v, want %v", expose, want)
	}

	// The image and the Kubernetes manifests agree.
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	if u := d.Spec.Template.Spec.SecurityContext.RunAsUser; u != nil && strconv.FormatInt(*u, 10) != uid {
		t.Errorf("Deployment runAsUser %d, image USER %s", *u, uid)
	}

	t.Run("build context", func(t *testing.T) { checkBuildContext(t, df) })
}

// checkBuildContext: what docker sends with `docker build -f deploy/Dockerfile .` under
// Dockerfile.dockerignore (BuildKit's own pattern matcher), and what the Dockerfile copies, cover
// every package directory of the module and nothing secret.
func checkBuildContext(t *testing.T, df dockerfile) {
	f, err := os.Open(ignorePath)
	if err != nil {
		t.Fatalf("%v (BuildKit reads deploy/Dockerfile.dockerignore for -f deploy/Dockerfile)", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(p string) bool {
		ok, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, p := range []string{".resolverd/encryption.key", ".resolverd/admin.token", ".resolverd/worker.token",
		".resolverd/database.url", ".resolverd/postgres/PG_VERSION", ".git/config", "bin/resolverd", "service.test", "deploy/.env"} {
		if !excluded(p) {
			t.Errorf("the build context includes %s", p)
		}
	}

	// Every directory COPY'd from the context, and every file the build needs, is sent.
	copiedDirs := map[string]bool{}
	for _, s := range df.stages {
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == "" {
				for _, src := range cp.SourcePaths {
					copiedDirs[strings.TrimSuffix(filepath.Clean(src), "/")] = true
					if filepath.Clean(src) != "." && excluded(filepath.Clean(src)) {
						t.Errorf("COPY %s: excluded from the build context by Dockerfile.dockerignore", src)
					}
				}
			}
		}
	}
	for _, p := range []string{"go.mod", "go.sum"} {
		if !copiedDirs[p] {
			t.Errorf("%s is not copied", p)
		}
	}
	// Top-level directories holding the main module's Go packages must be copied (a new one would
	// otherwise break the image build only), but for those resolverd's binary never imports:
	// examples/ (programs for chat workers to copy).
	notInTheBinary := map[string]bool{"examples": true}
	entries, err := os.ReadDir(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || name == "bin" || name == "deploy" || notInTheBinary[name] {
			continue
		}
		if hasOwnModule(filepath.Join(repoRoot, name)) || !hasGoFiles(filepath.Join(repoRoot, name)) {
			continue
		}
		if !copiedDirs[name] {
			t.Errorf("%s/ holds Go packages of the module but the Dockerfile does not COPY it", name)
		}
		if excluded(name + "/x.go") {
			t.Errorf("%s/ is excluded from the build context", name)
		}
	}
}

func hasOwnModule(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "go.mod"))
	return err == nil
}

// hasGoFiles: non-test .go files under dir, not counting nested modules.
func hasGoFiles(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipDir
		}
		if d.IsDir() && p != dir && hasOwnModule(p) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			found = true
		}
		return nil
	})
	return found
}

// ---------------------------------------------------------------------------------------------
// Helpers

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

// migrationSelector is the label selector deploy/README.md's upgrade steps apply first, alone.
const migrationSelector = "app.kubernetes.io/component in (migration,identity)"

// TestMigrationStepAppliesWhatTheJobNeeds: the README's first apply (a label selector on the
// kustomize output) must bring the migration Job and everything it needs to run on a first
// install — the ServiceAccount it runs as — and nothing that would start serving pods.
func TestMigrationStepAppliesWhatTheJobNeeds(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(baseDir, "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "-l '"+migrationSelector+"'") {
		t.Fatalf("deploy/README.md no longer applies -l '%s': keep this test's selector in step", migrationSelector)
	}
	sel, err := labels.Parse(migrationSelector)
	if err != nil {
		t.Fatal(err)
	}
	objs := loadBase(t)
	job := only[*batchv1.Job](t, objs)
	var picked []object
	for _, o := range objs {
		if sel.Matches(labels.Set(objectMeta(o.obj).Labels)) {
			picked = append(picked, o)
		}
	}
	var haveJob, haveSA bool
	for _, o := range picked {
		switch v := o.obj.(type) {
		case *batchv1.Job:
			haveJob = v.Name == job.Name
		case *corev1.ServiceAccount:
			haveSA = haveSA || v.Name == job.Spec.Template.Spec.ServiceAccountName
		default:
			t.Errorf("the migration step would also apply %s", o)
		}
	}
	if !haveJob || !haveSA {
		t.Errorf("the migration step applies %v; want the Job and its ServiceAccount %q", picked, job.Spec.Template.Spec.ServiceAccountName)
	}
}
