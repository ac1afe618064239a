package devmode

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// grpcurlCommand is how the printed commands call grpcurl: the one on PATH, else the pinned build
// that `make run` puts in bin/.
func grpcurlCommand() string {
	if _, err := exec.LookPath("grpcurl"); err == nil {
		return "grpcurl"
	}
	if _, err := os.Stat(filepath.Join("bin", "grpcurl")); err == nil {
		return "./bin/grpcurl"
	}
	return "grpcurl"
}

func printBanner(w io.Writer, addr, dir string, demo bool) {
	g := grpcurlCommand()
	rel := dir
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, dir); err == nil && !filepath.IsAbs(r) && len(r) < len(dir) {
			rel = r
		}
	}
	worker := fmt.Sprintf(`-H "authorization: Bearer $(cat %s/worker.token)"`, rel)
	admin := fmt.Sprintf(`-H "authorization: Bearer $(cat %s/admin.token)"`, rel)
	fmt.Fprintf(w, "\nresolverd dev is serving on %s (PostgreSQL: %s/database.url)\n", addr, rel)
	fmt.Fprintf(w, "tokens: %s/admin.token (scope *), %s/worker.token (the five read scopes ResolveModel needs)\n\n", rel, rel)
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
