package pgcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// account is the OS user the server processes run as.
type account struct {
	name   string              // empty when running as ourselves
	cred   *syscall.Credential // nil when running as ourselves
	uid    int
	gid    int
	groups map[int]bool // supplementary groups, for the traversal check
}

// serverAccount picks who runs initdb and postgres. PostgreSQL refuses to run
// as root, and sessions and CI run as root, so root hands the work to the
// postgres system user (or nobody, which every system has).
func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		a := account{
			name:   name,
			cred:   &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
			uid:    uid,
			gid:    gid,
			groups: map[int]bool{gid: true},
		}
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if n, err := strconv.Atoi(id); err == nil {
					a.groups[n] = true
				}
			}
		}
		return a, nil
	}
	return account{}, errors.New("running as root, and PostgreSQL refuses to run as root, but neither a postgres nor a nobody user exists to run it as: create one with `useradd --system postgres`")
}

// prepareDataDir creates dataDir if needed and makes it usable by acct.
func prepareDataDir(dataDir string, acct account) error {
	// Missing ancestors get 0755 so the server account can pass through them.
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return fmt.Errorf("create parent of data directory: %w", err)
	}
	created := false
	if err := os.Mkdir(dataDir, 0o700); err == nil {
		created = true
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create data directory: %w", err)
	}
	if fi, err := os.Stat(dataDir); err != nil {
		return fmt.Errorf("inspect data directory: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dataDir)
	}
	if acct.cred == nil {
		return nil
	}
	// Checked here rather than left to initdb, whose "Permission denied" on
	// some path does not say that the real problem is e.g. a 0700 /root.
	if err := checkTraversable(dataDir, acct); err != nil {
		return err
	}
	if created {
		if err := chownTree(dataDir, acct); err != nil {
			return fmt.Errorf("hand data directory to user %s: %w", acct.name, err)
		}
	} else if err := os.Chown(dataDir, acct.uid, acct.gid); err != nil {
		return fmt.Errorf("hand data directory to user %s: %w", acct.name, err)
	}
	// postgres insists on owning PGDATA; a cluster initialised under another
	// account (say, by a non-root run) would otherwise be refused.
	pgdata := filepath.Join(dataDir, "data")
	if fi, err := os.Stat(pgdata); err == nil {
		if uid, _, ok := ownerOf(fi); ok && uid != acct.uid {
			if err := chownTree(pgdata, acct); err != nil {
				return fmt.Errorf("hand existing cluster to user %s: %w", acct.name, err)
			}
		}
	}
	return nil
}

// checkTraversable fails when some ancestor of dir cannot be searched by acct.
func checkTraversable(dir string, acct account) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", d, err)
		}
		if !canSearch(fi, acct) {
			return fmt.Errorf("PostgreSQL runs as user %s (it refuses to run as root) and cannot reach data directory %s: "+
				"directory %s (mode %v) is not traversable by that user; use a data directory under /tmp instead, or run `chmod o+x %s`",
				acct.name, dir, d, fi.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func canSearch(fi fs.FileInfo, acct account) bool {
	uid, gid, ok := ownerOf(fi)
	if !ok {
		return true // cannot tell; let the server report it
	}
	perm := fi.Mode().Perm()
	switch {
	case uid == acct.uid:
		return perm&0o100 != 0
	case acct.groups[gid] || gid == acct.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

func ownerOf(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

func chownTree(root string, acct account) error {
	return filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, acct.uid, acct.gid)
	})
}

// ensureCluster returns the superuser password of the cluster in dataDir,
// running initdb first unless a cluster is already there.
func ensureCluster(ctx context.Context, bin Binaries, dataDir string, acct account, opts Options, logw io.Writer, serverLog io.Writer) (string, error) {
	pgdata := filepath.Join(dataDir, "data")
	pwPath := filepath.Join(dataDir, "password")

	if raw, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		have, want := strings.TrimSpace(string(raw)), majorVersion(bin.Version)
		if have != want {
			return "", fmt.Errorf("cluster in %s was created by PostgreSQL %s but the binaries in %s are PostgreSQL %s: "+
				"point %s at PostgreSQL %s binaries or use a fresh data directory", pgdata, have, bin.Dir, bin.Version, binDirEnv, have)
		}
		pw, err := os.ReadFile(pwPath)
		if err != nil {
			return "", fmt.Errorf("read password of existing cluster (delete %s to start over): %w", dataDir, err)
		}
		if p := strings.TrimSpace(string(pw)); p != "" {
			return p, nil
		}
		return "", fmt.Errorf("password file %s is empty (delete %s to start over)", pwPath, dataDir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("inspect existing cluster: %w", err)
	}

	// An empty one is harmless; anything else is not ours to delete.
	if err := os.Remove(pgdata); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s exists but holds no PostgreSQL cluster (no PG_VERSION); remove it or use another data directory", pgdata)
	}

	fmt.Fprintf(logw, "initialising PostgreSQL %s cluster in %s\n", bin.Version, dataDir)
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	password := hex.EncodeToString(buf)
	// Written before initdb so a cluster never exists without its password.
	if err := writeFileAtomic(pwPath, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store password: %w", err)
	}
	// initdb writes PG_VERSION long before it is done, so it works in a
	// scratch directory that is renamed into place only on success: an
	// interrupted run can then never pass for a usable cluster.
	scratch := pgdata + ".initdb"
	if err := os.RemoveAll(scratch); err != nil {
		return "", fmt.Errorf("remove leftovers of an interrupted initdb: %w", err)
	}
	if err := runInitdb(ctx, bin, dataDir, scratch, password, acct, opts.Durable, serverLog); err != nil {
		_ = os.RemoveAll(scratch)
		return "", err
	}
	if err := os.Rename(scratch, pgdata); err != nil {
		return "", fmt.Errorf("move initialised cluster into place: %w", err)
	}
	return password, nil
}

func runInitdb(ctx context.Context, bin Binaries, dataDir, pgdata, password string, acct account, durable bool, serverLog io.Writer) error {
	// The password travels in a file rather than on the command line, where
	// any local user could read it from the process list.
	pwfile, err := os.CreateTemp(dataDir, ".initdb-pwfile-*")
	if err != nil {
		return fmt.Errorf("create initdb password file: %w", err)
	}
	defer os.Remove(pwfile.Name())
	_, werr := pwfile.WriteString(password + "\n")
	cerr := pwfile.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write initdb password file: %w", err)
	}
	if acct.cred != nil {
		if err := os.Chown(pwfile.Name(), acct.uid, acct.gid); err != nil {
			return fmt.Errorf("hand initdb password file to user %s: %w", acct.name, err)
		}
	}

	args := []string{
		"-D", pgdata,
		"-U", "postgres",
		"--pwfile=" + pwfile.Name(),
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C", // needs no system locales installed
	}
	if !durable {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, bin.Initdb, args...)
	cmd.Dir = dataDir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = sysProcAttr(acct.cred)
	out, err := cmd.CombinedOutput()
	// Kept with the server's log so one file tells the whole story.
	_, _ = serverLog.Write(out)
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		err = fmt.Errorf("%w (%w)", ctxErr, err)
	}
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, lastLines(string(out), tailLines))
	}
	return nil
}

// serverEnv pins the C locale so the server's messages, which Start inspects
// for "could not bind", are in English whatever the caller's locale.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANGUAGE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	_, werr := f.Write(data)
	err = errors.Join(werr, f.Chmod(perm), f.Close())
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
