package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	readyTimeout  = 60 * time.Second
	readyPoll     = 50 * time.Millisecond
	stopTimeout   = 30 * time.Second // after SIGINT (fast shutdown)
	quitTimeout   = 5 * time.Second  // after SIGQUIT (immediate shutdown)
	killTimeout   = 5 * time.Second  // after SIGKILL
	bindRetries   = 3
	tailLines     = 20
	maxTailBytes  = 64 << 10
	superuserName = "postgres"
)

// Options configures Start.
type Options struct {
	// DataDir holds the cluster; it is created if missing. A cluster already
	// initialised there (data/PG_VERSION exists) is reused, not re-initialised.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Durable keeps PostgreSQL's crash-safety defaults (dev). When false
	// (tests) fsync, synchronous_commit and full_page_writes are off and
	// initdb runs with --no-sync, trading crash safety for speed.
	Durable bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// ExtraSettings are passed to postgres as -c name=value, after and thus
	// overriding the settings Start chooses.
	ExtraSettings map[string]string
}

// Cluster is a running PostgreSQL server owned by this process.
type Cluster struct {
	dataDir  string
	port     int
	password string
	cmd      *exec.Cmd
	logFile  *os.File

	done    chan struct{} // closed once the postmaster has been reaped
	waitErr error         // the postmaster's exit status; read only after done

	stopOnce sync.Once
	stopErr  error
}

// errPortInUse marks a start that failed only because the port was taken
// between our probe and postgres binding it.
var errPortInUse = errors.New("port already in use")

// Start initialises the cluster in opts.DataDir if needed and runs postgres
// until Stop. ctx bounds only the start-up.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	if opts.DataDir == "" {
		return nil, errors.New("start postgres: Options.DataDir is empty")
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data directory: %w", err)
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(dataDir, acct); err != nil {
		return nil, err
	}
	// Opened by us, not the server account: the log is our file and postgres
	// writes to it through the inherited descriptor.
	logPath := filepath.Join(dataDir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	password, err := ensureCluster(ctx, bin, dataDir, acct, opts, logw, logFile)
	if err != nil {
		logFile.Close()
		return nil, err
	}

	attempts := 1
	if opts.Port == 0 {
		attempts += bindRetries
	}
	for i := 0; ; i++ {
		port := opts.Port
		if port == 0 {
			if port, err = pickFreePort(); err != nil {
				logFile.Close()
				return nil, err
			}
		}
		c := &Cluster{dataDir: dataDir, port: port, password: password, logFile: logFile}
		err = c.launch(ctx, bin, acct, opts)
		if err == nil {
			fmt.Fprintf(logw, "PostgreSQL listening on 127.0.0.1:%d\n", port)
			return c, nil
		}
		if !errors.Is(err, errPortInUse) || i+1 >= attempts {
			logFile.Close()
			return nil, err
		}
		fmt.Fprintf(logw, "port %d was taken before PostgreSQL could bind it; retrying on another port\n", port)
	}
}

// pickFreePort is a variable so tests can simulate losing the race for a port.
var pickFreePort = freePort

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch runs the postmaster and waits until it serves connections. postgres
// is run directly rather than through pg_ctl so that it is our child and its
// lifetime is ours.
func (c *Cluster) launch(ctx context.Context, bin Binaries, acct account, opts Options) error {
	logStart, err := c.logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("start postgres: find end of server log: %w", err)
	}
	settings := []string{
		"listen_addresses=127.0.0.1",
		"port=" + strconv.Itoa(c.port),
		"unix_socket_directories=", // no socket files in shared places like /tmp
		"logging_collector=off",    // keep everything in our postgres.log
	}
	if !opts.Durable {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	names := make([]string, 0, len(opts.ExtraSettings))
	for name := range opts.ExtraSettings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		settings = append(settings, name+"="+opts.ExtraSettings[name])
	}
	args := []string{"-D", filepath.Join(c.dataDir, "data")}
	for _, s := range settings {
		args = append(args, "-c", s)
	}

	c.cmd = exec.Command(bin.Postgres, args...)
	c.cmd.Dir = c.dataDir
	c.cmd.Env = serverEnv()
	// An *os.File is handed straight to the child, so no copying goroutine
	// outlives the process.
	c.cmd.Stdout = c.logFile
	c.cmd.Stderr = c.logFile
	c.cmd.SysProcAttr = sysProcAttr(acct.cred)
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.done = make(chan struct{})
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()

	err = c.waitReady(ctx)
	if err == nil {
		return nil
	}
	exited := false
	select {
	case <-c.done:
		exited = true
	default:
		_ = c.shutdown()
	}
	out := c.readLog(logStart)
	tail := lastLines(out, tailLines)
	switch {
	case exited && strings.Contains(out, "could not bind"):
		return fmt.Errorf("start postgres on port %d: %w; server log:\n%s", c.port, errPortInUse, tail)
	case exited && strings.Contains(out, `lock file "postmaster.pid" already exists`):
		return fmt.Errorf("start postgres: another PostgreSQL server is already running on %s; stop it first (its PID is the first line of %s); server log:\n%s",
			filepath.Join(c.dataDir, "data"), filepath.Join(c.dataDir, "data", "postmaster.pid"), tail)
	case exited:
		return fmt.Errorf("start postgres: server exited during start-up (%v); server log (%s):\n%s",
			c.waitErr, filepath.Join(c.dataDir, "postgres.log"), tail)
	default:
		return fmt.Errorf("start postgres: %w; server log (%s):\n%s", err, filepath.Join(c.dataDir, "postgres.log"), tail)
	}
}

// waitReady polls until the postmaster reports itself ready and a TCP
// connection succeeds; it returns nil or why it gave up.
func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if c.ready() {
			return nil
		}
		select {
		case <-c.done:
			return errors.New("server exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("wait for server to accept connections: %w", ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("server not ready after %v", readyTimeout)
		case <-tick.C:
		}
	}
}

// ready reads postmaster.pid, whose 8th line PostgreSQL 10+ sets to "ready"
// once it accepts connections. The PID check ignores a stale file left by a
// crashed earlier server, which may well say "ready" too.
func (c *Cluster) ready() bool {
	raw, err := os.ReadFile(filepath.Join(c.dataDir, "data", "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) < 8 ||
		strings.TrimSpace(lines[0]) != strconv.Itoa(c.cmd.Process.Pid) ||
		strings.TrimSpace(lines[7]) != "ready" {
		return false
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Port returns the TCP port the server listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// URL returns a connection URL for database as the superuser postgres.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuserName, c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// transactions rolled back) and waits for it to exit, escalating to SIGQUIT
// and SIGKILL if it hangs. It is idempotent and safe for concurrent use; every
// call returns the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.stopErr = c.shutdown()
		c.logFile.Close()
	})
	return c.stopErr
}

// shutdown stops and reaps the postmaster.
func (c *Cluster) shutdown() error {
	select {
	case <-c.done:
		if c.waitErr != nil {
			return fmt.Errorf("stop postgres: server had already exited: %w", c.waitErr)
		}
		return nil
	default:
	}
	pid := c.cmd.Process.Pid
	// SIGINT goes to the postmaster alone: it is what tells the backends.
	_ = syscall.Kill(pid, syscall.SIGINT)
	if c.waitDone(stopTimeout) {
		if c.waitErr != nil {
			return fmt.Errorf("stop postgres: %w", c.waitErr)
		}
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	if c.waitDone(quitTimeout) {
		return fmt.Errorf("stop postgres: no exit %v after SIGINT; used immediate shutdown (SIGQUIT)", stopTimeout)
	}
	// Backends run in sessions of their own, so they cannot be signalled as a
	// group; they notice the postmaster's death and exit by themselves.
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if c.waitDone(killTimeout) {
		return fmt.Errorf("stop postgres: no exit after SIGINT and SIGQUIT; killed it (SIGKILL)")
	}
	return fmt.Errorf("stop postgres: process %d survived SIGKILL for %v", pid, killTimeout)
}

func (c *Cluster) waitDone(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// readLog returns what the server wrote to its log from offset on, capped to
// the last maxTailBytes.
func (c *Cluster) readLog(offset int64) string {
	f, err := os.Open(c.logFile.Name())
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", c.logFile.Name(), err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > maxTailBytes {
		offset = fi.Size() - maxTailBytes
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
