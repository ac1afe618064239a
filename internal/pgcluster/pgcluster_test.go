package pgcluster

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// dataDir returns a fresh directory the server account can reach. t.TempDir
// nests it in a 0700 directory of its own, which a root test run must open up
// for the postgres user.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg")
	if os.Geteuid() == 0 {
		if err := os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func requireBinaries(t *testing.T) Binaries {
	t.Helper()
	b, err := FindBinaries()
	if err != nil {
		t.Skipf("no PostgreSQL server binaries: %v", err)
	}
	return b
}

func TestStartStopReuse(t *testing.T) {
	bin := requireBinaries(t)
	dir := dataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var log bytes.Buffer
	c, err := Start(ctx, Options{DataDir: dir, Log: &log})
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if !strings.Contains(log.String(), "initialising PostgreSQL "+bin.Version+" cluster in "+dir) {
		t.Errorf("first start did not report initialisation; log:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "PostgreSQL listening on 127.0.0.1:"+strconv.Itoa(c.Port())) {
		t.Errorf("first start did not report its address; log:\n%s", log.String())
	}
	checkServing(t, c)

	pw, err := os.ReadFile(filepath.Join(dir, "password"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "password")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	password := strings.TrimSpace(string(pw))
	if want := "postgres://postgres:" + password + "@127.0.0.1:" + strconv.Itoa(c.Port()) + "/app?sslmode=disable"; c.URL("app") != want {
		t.Errorf("URL = %q, want %q", c.URL("app"), want)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".initdb-pwfile-*")); len(leftovers) > 0 {
		t.Errorf("initdb password file not removed: %v", leftovers)
	}

	// Concurrent and repeated Stops must all succeed and agree.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Stop()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Stop #%d: %v", i, err)
		}
	}
	if err := c.Stop(); err != nil {
		t.Errorf("repeated Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(c.Port()), time.Second); err == nil {
		conn.Close()
		t.Errorf("port %d still accepts connections after Stop", c.Port())
	}

	log.Reset()
	c2, err := Start(ctx, Options{DataDir: dir, Log: &log})
	if err != nil {
		t.Fatalf("restart on existing cluster: %v", err)
	}
	t.Cleanup(func() { _ = c2.Stop() })
	if strings.Contains(log.String(), "initialising") {
		t.Errorf("restart re-initialised the cluster; log:\n%s", log.String())
	}
	checkServing(t, c2)
	if !strings.Contains(c2.URL("app"), ":"+password+"@") {
		t.Errorf("restart did not reuse the stored password: URL %q", c2.URL("app"))
	}
	if err := c2.Stop(); err != nil {
		t.Errorf("Stop after restart: %v", err)
	}
}

func checkServing(t *testing.T, c *Cluster) {
	t.Helper()
	if c.Port() <= 0 {
		t.Fatalf("Port() = %d", c.Port())
	}
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(c.Port()), 5*time.Second)
	if err != nil {
		t.Fatalf("connect to cluster: %v", err)
	}
	conn.Close()
}

func TestStartFixedPortTaken(t *testing.T) {
	requireBinaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{DataDir: dataDir(t), Port: port})
	if err == nil {
		c.Stop()
		t.Fatal("Start on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), "could not bind") {
		t.Errorf("error does not show the server log: %v", err)
	}
}

func TestStartRetriesWhenPickedPortIsTaken(t *testing.T) {
	requireBinaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	calls := 0
	pickFreePort = func() (int, error) {
		calls++
		if calls == 1 {
			return taken, nil // as if another process bound it after our probe
		}
		return freePort()
	}
	t.Cleanup(func() { pickFreePort = freePort })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{DataDir: dataDir(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer c.Stop()
	if c.Port() == taken || calls != 2 {
		t.Errorf("Port() = %d after %d picks; want a port other than %d after 2 picks", c.Port(), calls, taken)
	}
	checkServing(t, c)
}

func TestFindBinariesMissing(t *testing.T) {
	t.Setenv(binDirEnv, t.TempDir())
	_, err := FindBinaries()
	if err == nil {
		t.Fatal("FindBinaries succeeded on an empty directory")
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("error does not say what to install: %v", err)
	}
}

func TestUntraversableAncestor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the cluster to another user")
	}
	acct, err := serverAccount()
	if err != nil {
		t.Fatal(err)
	}
	locked := t.TempDir() // 0700 parent, owned by root
	if err := os.Chmod(filepath.Dir(locked), 0o700); err != nil {
		t.Fatal(err)
	}
	err = prepareDataDir(filepath.Join(locked, "pg"), acct)
	if err == nil {
		t.Fatal("prepareDataDir succeeded under a 0700 root directory")
	}
	if !strings.Contains(err.Error(), filepath.Dir(locked)) || !strings.Contains(err.Error(), "/tmp") {
		t.Errorf("error should name the blocking directory and suggest /tmp: %v", err)
	}
}

func TestMajorVersion(t *testing.T) {
	for in, want := range map[string]string{"15.18": "15", "17devel": "17", "16beta1": "16", "9.6.24": "9.6"} {
		if got := majorVersion(in); got != want {
			t.Errorf("majorVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpandPatternNewestFirst(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "13", "16"} {
		if err := os.MkdirAll(filepath.Join(root, v, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := expandPattern(filepath.Join(root, "*", "bin"))
	var versions []string
	for _, p := range got {
		versions = append(versions, filepath.Base(filepath.Dir(p)))
	}
	if strings.Join(versions, ",") != "16,15,13,9.6" {
		t.Errorf("order = %v, want 16,15,13,9.6", versions)
	}
}
