package devmode

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// grpcurlPackage and grpcurlVersion are the grpcurl pinned in tools/go.mod (a test keeps them equal),
// for the hint printed when no grpcurl can be found.
const (
	grpcurlPackage = "github.com/fullstorydev/grpcurl/cmd/grpcurl"
	grpcurlVersion = "v1.9.4"
)

// grpcurlEnv names a grpcurl to use explicitly (make test sets it to the pinned build).
const grpcurlEnv = "RESOLVER_GRPCURL"

// lookup is what findGrpcurl reads from the machine; tests replace it.
type lookup struct {
	executable func() (string, error)
	getenv     func(string) string
	lookPath   func(string) (string, error)
}

var osLookup = lookup{executable: os.Executable, getenv: os.Getenv, lookPath: exec.LookPath}

// findGrpcurl returns the absolute path of the grpcurl the printed commands call, so that they work
// pasted into any shell from any directory: RESOLVER_GRPCURL when set, else the grpcurl beside the
// resolverd binary (`make run` builds both into bin/), else the one on PATH. It returns "" when there
// is none.
func findGrpcurl(l lookup) string {
	if g := l.getenv(grpcurlEnv); g != "" {
		if !strings.ContainsRune(g, filepath.Separator) {
			if p, err := l.lookPath(g); err == nil {
				g = p
			}
		}
		if abs, err := filepath.Abs(g); err == nil && isExecutable(abs) {
			return abs
		}
	}
	if exe, err := l.executable(); err == nil {
		if beside := filepath.Join(filepath.Dir(exe), "grpcurl"); isExecutable(beside) {
			return beside
		}
	}
	if p, err := l.lookPath("grpcurl"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// grpcurlHint tells how to get the pinned grpcurl: `make bin/grpcurl` when resolverd runs from a
// checkout's bin/ (as under `make run`), else `go install`.
func grpcurlHint(l lookup) string {
	install := fmt.Sprintf("go install %s@%s", grpcurlPackage, grpcurlVersion)
	var b strings.Builder
	fmt.Fprintf(&b, "# No grpcurl found (not in %s, not beside resolverd, not on PATH), so no commands are printed.\n", grpcurlEnv)
	b.WriteString("# Get the pinned one, then restart resolverd dev to see ready-to-paste commands:\n")
	if exe, err := l.executable(); err == nil {
		repo := filepath.Dir(filepath.Dir(exe))
		if filepath.Base(filepath.Dir(exe)) == "bin" && isFile(filepath.Join(repo, "tools", "go.mod")) && isFile(filepath.Join(repo, "Makefile")) {
			fmt.Fprintf(&b, "make -C %s bin/grpcurl\n# or, anywhere with Go installed (into $(go env GOPATH)/bin; put it on PATH or set %s):\n", shellQuote(repo), grpcurlEnv)
		}
	}
	b.WriteString(install + "\n\n")
	return b.String()
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func printBanner(w io.Writer, addr, dir string, demo bool) {
	writeBanner(w, addr, dir, demo, findGrpcurl(osLookup), grpcurlHint(osLookup))
}

// writeBanner prints where things are and, when grpcurl is known, commands that run as printed in a
// new shell from any directory: grpcurl and the token files by absolute path, quoted for the shell.
// Each command follows a line starting with "# ".
func writeBanner(w io.Writer, addr, dir string, demo bool, grpcurl, hint string) {
	workerFile := shellQuote(filepath.Join(dir, "worker.token"))
	adminFile := shellQuote(filepath.Join(dir, "admin.token"))
	fmt.Fprintf(w, "\nresolverd dev is serving on %s (PostgreSQL: %s)\n", addr, filepath.Join(dir, "database.url"))
	fmt.Fprintf(w, "tokens: %s (scope *), %s (the worker scopes: the five read scopes ResolveModel needs and credential:report)\n\n",
		filepath.Join(dir, "admin.token"), filepath.Join(dir, "worker.token"))
	if grpcurl == "" {
		fmt.Fprint(w, hint)
		fmt.Fprintln(w, "Press Ctrl-C to stop resolverd and its PostgreSQL.")
		return
	}
	g := shellQuote(grpcurl)
	worker := fmt.Sprintf(`-H "authorization: Bearer $(cat %s)"`, workerFile)
	admin := fmt.Sprintf(`-H "authorization: Bearer $(cat %s)"`, adminFile)
	if demo {
		fmt.Fprintf(w, "# resolve the demo chat with its own model (central key):\n%s -plaintext %s -d '{\"chat_id\":\"%s\",\"purpose\":\"PURPOSE_CHAT\"}' %s resolver.v1.ResolverService/ResolveModel\n\n",
			g, worker, DemoChat, addr)
		fmt.Fprintf(w, "# title generation with Claude (alice's own key; BYOK required):\n%s -plaintext %s -d '{\"chat_id\":\"%s\",\"model_config_id\":\"%s\",\"purpose\":\"PURPOSE_TITLE\"}' %s resolver.v1.ResolverService/ResolveModel\n\n",
			g, worker, DemoChat, DemoClaude, addr)
		fmt.Fprintf(w, "# a subagent override on a disabled config falls back to the chat's model:\n%s -plaintext %s -d '{\"chat_id\":\"%s\",\"model_config_id\":\"%s\",\"purpose\":\"PURPOSE_SUBAGENT\"}' %s resolver.v1.ResolverService/ResolveModel\n\n",
			g, worker, DemoChat, DemoRetired, addr)
		fmt.Fprintf(w, "# rotate OpenAI's central key (the next resolution uses it):\n%s -plaintext %s -d '{\"provider_id\":\"%s\",\"api_key\":\"sk-demo-openai-central-0002\"}' %s resolver.v1.AdminService/RotateProviderKey\n\n",
			g, admin, DemoOpenAI, addr)
	}
	fmt.Fprintf(w, "# list providers:\n%s -plaintext %s %s resolver.v1.AdminService/ListProviders\n\n", g, admin, addr)
	fmt.Fprintf(w, "# health (no token needed):\n%s -plaintext %s grpc.health.v1.Health/Check\n\n", g, addr)
	fmt.Fprintln(w, "Press Ctrl-C to stop resolverd and its PostgreSQL.")
}

// shellQuote returns s as one bash word: as it is when it holds only characters the shell leaves
// alone, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
