package validate

// docker-compose.yaml, loaded and validated by compose-go.

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

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
