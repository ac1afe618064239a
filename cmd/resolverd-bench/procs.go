package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/resolverd/resolverd/internal/pgcluster"
)

// replica is one `resolverd serve` process.
type replica struct {
	cmd   *exec.Cmd
	addr  string
	debug string // --debug-listen address, when profiling
	log   *os.File
}

func buildResolverd(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/resolverd")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build resolverd (run make bench from the repository root): %w", err)
	}
	return nil
}

func createDatabase(ctx context.Context, c *pgcluster.Cluster) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE bench"); err != nil {
		return "", err
	}
	return c.URL("bench"), nil
}

func resolverdCmd(ctx context.Context, bin, url string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "RESOLVER_DATABASE_URL="+url)
	return cmd
}

func migrate(ctx context.Context, bin, url string) error {
	if out, err := resolverdCmd(ctx, bin, url, "migrate", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %v\n%s", err, out)
	}
	return nil
}

// createToken mints a token with r's binary and environment (its database and encryption keys).
func createToken(ctx context.Context, r *replica, name string, scopes ...string) (string, error) {
	args := []string{"token", "create", "--name", name}
	for _, s := range scopes {
		args = append(args, "--scope", s)
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, r.cmd.Path, args...)
	cmd.Env = r.cmd.Env
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("token create: %v: %s", err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startReplicas(ctx context.Context, bin, url, encKey string, o options, dir string) ([]*replica, error) {
	var out []*replica
	for i := range o.replicas {
		addr, err := freePort()
		if err != nil {
			return out, err
		}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("replica%d.log", i)))
		if err != nil {
			return out, err
		}
		args := []string{"serve", "--plaintext", "--rate-limit", "0", "--listen", addr, "--cache-max-entries", strconv.Itoa(o.cacheMax), "--log-level", "warn"}
		var debug string
		if i == 0 && o.profile != "" {
			if debug, err = freePort(); err != nil {
				return out, err
			}
			args = append(args, "--debug-listen", debug)
		}
		cmd := resolverdCmd(context.WithoutCancel(ctx), bin, url, args...)
		cmd.Env = append(cmd.Env, "RESOLVER_ENCRYPTION_KEYS="+encKey)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = childAttr() // the replicas die with the bench
		if err := cmd.Start(); err != nil {
			return out, err
		}
		r := &replica{cmd: cmd, addr: addr, debug: debug, log: logf}
		out = append(out, r)
		if err := waitServing(ctx, addr); err != nil {
			b, _ := os.ReadFile(logf.Name())
			return out, fmt.Errorf("replica %d: %w\n%s", i, err, b)
		}
	}
	return out, nil
}

func waitServing(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not SERVING after 30s")
}

func stopAll(rs []*replica) {
	for _, r := range rs {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, r := range rs {
		_ = r.cmd.Wait()
		r.log.Close()
	}
}

// rssMiB reads a process's resident set size from /proc (Linux).
func rssMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			kb, err := strconv.ParseFloat(fields[0], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
