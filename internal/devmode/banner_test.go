package devmode

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PrintedCommands returns the commands of a banner: every line that follows a "# " comment line.
func PrintedCommands(banner string) []string {
	var cmds []string
	lines := strings.Split(banner, "\n")
	for i := 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i-1], "# ") && lines[i] != "" && !strings.HasPrefix(lines[i], "#") {
			cmds = append(cmds, lines[i])
		}
	}
	return cmds
}

// RunAsPasted runs line exactly as printed, as someone pasting it would: through bash, in a fresh
// environment whose PATH holds nothing but cat (so no grpcurl), from a directory that is not the
// data dir's parent.
func RunAsPasted(t *testing.T, line string) ([]byte, error) {
	t.Helper()
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	pathDir := t.TempDir()
	if err := os.Symlink(cat, filepath.Join(pathDir, "cat")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c", line)
	cmd.Env = []string{"PATH=" + pathDir, "HOME=" + t.TempDir(), "LANG=C"}
	cmd.Dir = t.TempDir()
	return cmd.CombinedOutput()
}

// TestGrpcurlPinMatchesTools: the version the banner tells people to install is the one tools/go.mod
// pins (and `make bin/grpcurl` builds).
func TestGrpcurlPinMatchesTools(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join("..", "..", "tools", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "\tgithub.com/fullstorydev/grpcurl "+grpcurlVersion+" ") {
		t.Fatalf("tools/go.mod does not pin github.com/fullstorydev/grpcurl %s; update grpcurlVersion", grpcurlVersion)
	}
}

func fakeExecutable(t *testing.T, path, script string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/bash\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindGrpcurl(t *testing.T) {
	root := t.TempDir()
	binDir := filepath.Join(root, "bin")
	fakeExecutable(t, filepath.Join(binDir, "resolverd"), "")
	beside := filepath.Join(binDir, "grpcurl")
	onPath := filepath.Join(root, "path", "grpcurl")
	fakeExecutable(t, onPath, "")
	explicit := filepath.Join(root, "explicit", "grpcurl")
	fakeExecutable(t, explicit, "")

	l := func(env string, pathHit string) lookup {
		return lookup{
			executable: func() (string, error) { return filepath.Join(binDir, "resolverd"), nil },
			getenv: func(k string) string {
				if k == grpcurlEnv {
					return env
				}
				return ""
			},
			lookPath: func(string) (string, error) {
				if pathHit == "" {
					return "", exec.ErrNotFound
				}
				return pathHit, nil
			},
		}
	}
	if got := findGrpcurl(l("", "")); got != "" {
		t.Errorf("nothing anywhere: got %q", got)
	}
	if got := findGrpcurl(l("", onPath)); got != onPath {
		t.Errorf("only on PATH: got %q, want %q", got, onPath)
	}
	// A relative PATH entry ("bin" in PATH) must still print an absolute path.
	t.Chdir(filepath.Join(root, "path"))
	if got := findGrpcurl(l("", "grpcurl")); got != onPath {
		t.Errorf("on PATH through a relative entry: got %q, want %q", got, onPath)
	}
	fakeExecutable(t, beside, "")
	if got := findGrpcurl(l("", onPath)); got != beside {
		t.Errorf("beside resolverd and on PATH: got %q, want the one beside resolverd %q", got, beside)
	}
	if got := findGrpcurl(l(explicit, onPath)); got != explicit {
		t.Errorf("%s set: got %q, want %q", grpcurlEnv, got, explicit)
	}
	if got := findGrpcurl(l(filepath.Join(root, "missing"), onPath)); got != beside {
		t.Errorf("%s names no file: got %q, want the one beside resolverd %q", grpcurlEnv, got, beside)
	}
}

// TestBannerWithoutGrpcurl: with no grpcurl, the banner prints how to get the pinned one instead of
// commands that fail, and the make line runs from anywhere.
func TestBannerWithoutGrpcurl(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "my repo")
	fakeExecutable(t, filepath.Join(repo, "bin", "resolverd"), "")
	for _, f := range []string{"Makefile", filepath.Join("tools", "go.mod")} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(repo, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := lookup{
		executable: func() (string, error) { return filepath.Join(repo, "bin", "resolverd"), nil },
		getenv:     func(string) string { return "" },
		lookPath:   func(string) (string, error) { return "", exec.ErrNotFound },
	}
	var b bytes.Buffer
	writeBanner(&b, "127.0.0.1:50051", "/data", true, findGrpcurl(l), grpcurlHint(l))
	out := b.String()
	for _, want := range []string{
		"No grpcurl found",
		"\nmake -C '" + repo + "' bin/grpcurl\n",
		"\ngo install github.com/fullstorydev/grpcurl/cmd/grpcurl@" + grpcurlVersion + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "-plaintext") || strings.Contains(out, "grpcurl -") {
		t.Errorf("banner prints grpcurl commands without a grpcurl:\n%s", out)
	}
	// Outside a checkout, only go install is offered.
	l.executable = func() (string, error) { return "/usr/local/bin/resolverd", nil }
	if hint := grpcurlHint(l); strings.Contains(hint, "make ") || !strings.Contains(hint, "go install ") {
		t.Errorf("hint outside a checkout:\n%s", hint)
	}
}

// TestPrintedCommandsRunAsPasted: with a grpcurl and a data dir whose paths need quoting, every
// printed command runs pasted into a fresh shell elsewhere and hands grpcurl the token.
func TestPrintedCommandsRunAsPasted(t *testing.T) {
	root := t.TempDir()
	grpcurl := filepath.Join(root, "tools dir", "grpcurl")
	// The fake grpcurl prints its arguments one per line.
	fakeExecutable(t, grpcurl, `for a in "$@"; do printf '[%s]\n' "$a"; done`+"\n")
	dir := filepath.Join(root, "it's data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"worker.token": "rslv_worker", "admin.token": "rslv_admin"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	writeBanner(&b, "127.0.0.1:50051", dir, true, grpcurl, "")
	cmds := PrintedCommands(b.String())
	if len(cmds) != 6 {
		t.Fatalf("want 6 commands, got %d:\n%s", len(cmds), b.String())
	}
	for _, c := range cmds {
		out, err := RunAsPasted(t, c)
		if err != nil {
			t.Fatalf("%s\n%v\n%s", c, err, out)
		}
		want := "[127.0.0.1:50051]"
		switch {
		case strings.Contains(c, "ResolverService"):
			want = "[authorization: Bearer rslv_worker]"
		case strings.Contains(c, "AdminService"):
			want = "[authorization: Bearer rslv_admin]"
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("%s\ngave grpcurl\n%s\nwant an argument %s", c, out, want)
		}
	}
}
