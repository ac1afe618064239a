package validate

// The workload-identity overlay (kubernetes/overlays/workload-identity): workers authenticate with a
// projected service-account token that resolverd verifies as a JWT.

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const identityOverlayDir = "../kubernetes/overlays/workload-identity"

// named returns the object of type T called name, failing unless there is exactly one.
func named[T any](t *testing.T, objs []object, name string) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok && objectMeta(o.obj).Name == name {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T named %s, found %d", zero, name, len(found))
	}
	return found[0]
}

func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s: no container named %s", d.Name, name)
	return nil
}

// buildOverlay checks the overlay's kustomization (strictly decoded, every file it names there,
// every file there named) and returns what `kustomize build` makes of it, strictly decoded.
func buildOverlay(t *testing.T, dir string) []object {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k ktypes.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Namespace != "" || len(k.CommonLabels) > 0 {
		t.Errorf("the overlay sets namespace %q or commonLabels: keep it namespace-free, selectors as written", k.Namespace)
	}
	if !slices.Contains(k.Resources, "../../base") {
		t.Errorf("resources %v: the overlay must build on ../../base", k.Resources)
	}
	named := map[string]bool{}
	for _, r := range k.Resources {
		named[r] = true
	}
	for _, p := range k.Patches {
		if p.Path != "" {
			named[p.Path] = true
		}
	}
	for f := range named {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("kustomization.yaml names %s: %v", f, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && n != "kustomization.yaml" && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) && !named[n] {
			t.Errorf("%s is in the overlay but kustomization.yaml neither lists nor patches with it", n)
		}
	}
	abs, err := filepath.Abs(dir)
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
	built, err := decodeDocuments("kustomize build "+filepath.Base(dir), out)
	if err != nil {
		t.Fatalf("the overlay's build does not decode strictly: %v", err)
	}
	return built
}

// TestWorkloadIdentityOverlay: the overlay builds on the whole base; resolverd accepts JWTs of an
// issuer for the audience the workers' projected tokens carry, reaches the issuer's keys, and
// keeps the base's invariants; the example worker mounts a resolverd-only token and gets through
// the NetworkPolicy.
func TestWorkloadIdentityOverlay(t *testing.T) {
	built := buildOverlay(t, identityOverlayDir)
	for _, o := range loadBase(t) {
		name := objectMeta(o.obj).Name
		if !slices.ContainsFunc(built, func(b object) bool { return b.kind == o.kind && objectMeta(b.obj).Name == name }) {
			t.Errorf("the overlay's build lacks the base's %s %s", o.kind, name)
		}
	}

	d := named[*appsv1.Deployment](t, built, appName)
	pod := d.Spec.Template.Spec
	c := serverContainer(t, d)
	t.Run("resolverd", func(t *testing.T) {
		checkEnv(t, "Deployment", c, serveFlags(t))
		checkProbes(t, c)
		checkPodSecurity(t, "Deployment", &pod)
		checkContainerSecurity(t, "Deployment", c)
		requireSecretRef(t, c, "RESOLVER_DATABASE_URL", "resolverd-database", "url")
		requireSecretRef(t, c, "RESOLVER_ENCRYPTION_KEYS", "resolverd-encryption", "keys")
		issuer, audience := envValue(c, "RESOLVER_JWT_ISSUER"), envValue(c, "RESOLVER_JWT_AUDIENCE")
		if issuer == "" || audience == "" {
			t.Fatalf("RESOLVER_JWT_ISSUER %q and RESOLVER_JWT_AUDIENCE %q must both be set (serve refuses one without the other)", issuer, audience)
		}
		keys := envValue(c, "RESOLVER_JWT_JWKS_URL")
		if keys == "" {
			keys = issuer // found through ISSUER/.well-known/openid-configuration
		}
		if u, err := url.Parse(keys); err != nil || u.Scheme != "https" || u.Host == "" {
			t.Errorf("the issuer's keys are fetched from %q: want an https URL", keys)
		}
		if envVar(c, "RESOLVER_TLS_CLIENT_CA") != nil {
			t.Errorf("RESOLVER_TLS_CLIENT_CA is still set: the workers, which present a token and no certificate, could not connect")
		}
		if f := envValue(c, "SSL_CERT_FILE"); f != "" && !mountedReadOnly(c, &pod, f, func(v *corev1.Volume) bool { return v.ConfigMap != nil || v.Secret != nil }) {
			t.Errorf("SSL_CERT_FILE=%s is not in a read-only ConfigMap or Secret mount", f)
		}
	})

	np := named[*networkingv1.NetworkPolicy](t, built, appName)
	t.Run("network policy", func(t *testing.T) {
		https := false
		for _, rule := range np.Spec.Egress {
			for _, p := range rule.Ports {
				https = https || (p.Port != nil && p.Port.IntVal == 443 && len(rule.To) == 0)
			}
		}
		if !https {
			t.Errorf("egress does not allow port 443: resolverd could not fetch the issuer's keys")
		}
	})

	w := named[*appsv1.Deployment](t, built, "chat-worker")
	t.Run("chat worker", func(t *testing.T) {
		wpod := w.Spec.Template.Spec
		wc := container(t, w, "chat-worker")
		checkPodSecurity(t, "chat-worker", &wpod)
		checkContainerSecurity(t, "chat-worker", wc)
		checkEnv(t, "chat-worker", wc, flagsOf(t, "resolve.go"))
		if w.Spec.Selector == nil || !subset(w.Spec.Selector.MatchLabels, w.Spec.Template.Labels) {
			t.Errorf("the worker's selector %v does not select its pods", w.Spec.Selector)
		}
		if sa := named[*corev1.ServiceAccount](t, built, wpod.ServiceAccountName); sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s mounts an API token the worker does not need", sa.Name)
		}
		admitted := false
		for _, rule := range np.Spec.Ingress {
			for _, peer := range rule.From {
				admitted = admitted || (peer.PodSelector != nil && peer.NamespaceSelector == nil && selects(peer.PodSelector, w.Spec.Template.Labels))
			}
		}
		if !admitted {
			t.Errorf("resolverd's NetworkPolicy does not admit the worker's pods (labels %v)", w.Spec.Template.Labels)
		}
		// The projected token: audience resolverd's, a lifetime Kubernetes accepts, mounted
		// read-only where RESOLVER_TOKEN_FILE says.
		file := envValue(wc, "RESOLVER_TOKEN_FILE")
		var token *corev1.ServiceAccountTokenProjection
		for _, v := range wpod.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, s := range v.Projected.Sources {
				if p := s.ServiceAccountToken; p != nil && mountedReadOnly(wc, &wpod, file, func(m *corev1.Volume) bool { return m.Name == v.Name }) &&
					path.Base(file) == p.Path {
					token = p
				}
			}
		}
		switch {
		case token == nil:
			t.Fatalf("RESOLVER_TOKEN_FILE=%q is not a serviceAccountToken of a projected volume mounted read-only", file)
		case token.Audience != envValue(c, "RESOLVER_JWT_AUDIENCE"):
			t.Errorf("the projected token's audience %q is not resolverd's RESOLVER_JWT_AUDIENCE %q", token.Audience, envValue(c, "RESOLVER_JWT_AUDIENCE"))
		case token.ExpirationSeconds == nil || *token.ExpirationSeconds < 600 || *token.ExpirationSeconds > 86400:
			t.Errorf("expirationSeconds %v: Kubernetes takes at least 600; keep it at most a day", token.ExpirationSeconds)
		}
	})
}

// mountedReadOnly reports whether file lies in a read-only mount (without subPath) of c whose
// volume passes ok.
func mountedReadOnly(c *corev1.Container, pod *corev1.PodSpec, file string, ok func(*corev1.Volume) bool) bool {
	for _, m := range c.VolumeMounts {
		if filepath.Dir(file) != filepath.Clean(m.MountPath) || !m.ReadOnly || m.SubPath != "" {
			continue
		}
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name && ok(&pod.Volumes[i]) {
				return true
			}
		}
	}
	return false
}
