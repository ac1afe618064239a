package validate

// The Dockerfile, parsed by BuildKit, and its build context.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	appsv1 "k8s.io/api/apps/v1"
)

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
