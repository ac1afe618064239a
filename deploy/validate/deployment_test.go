package validate

// The Deployment: replicas, rollout, probes, security, environment, TLS files.

import (
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

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

// serveFlags: the flags of serve.go and of keysource.go (the key flags every command that seals
// shares: --encryption-keys, --kms-key-uri, ...), plus those being added to serve alongside this
// deployment (metrics, TLS, tracing, rate limit, call timeout), which may not be in serve.go yet.
func serveFlags(t *testing.T) map[string]bool {
	out := flagsOf(t, "serve.go", "metrics-listen", "tls-cert", "tls-key", "tls-client-ca", "plaintext",
		"otlp-endpoint", "rate-limit", "call-timeout")
	for name := range flagsOf(t, "keysource.go") {
		out[name] = true
	}
	return out
}
