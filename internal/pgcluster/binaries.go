// Package pgcluster starts and stops a private PostgreSQL cluster from the
// server binaries installed on the machine. It exists so that dev mode and the
// test suite get a real PostgreSQL without Docker or downloaded binaries.
package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// binDirEnv names the environment variable that, when set to a directory,
// replaces the search for the server binaries.
const binDirEnv = "RESOLVER_PG_BIN"

const installHint = "install them with `apt-get install postgresql` (Debian/Ubuntu), " +
	"`dnf install postgresql-server` (Fedora/RHEL) or `brew install postgresql@16` (macOS)"

// searchPatterns lists where distributions and Homebrew put the server
// binaries; on Debian/Ubuntu they are deliberately kept off PATH.
var searchPatterns = []string{
	"/usr/lib/postgresql/*/bin",
	"/usr/pgsql-*/bin",
	"/opt/homebrew/opt/postgresql@*/bin",
	"/usr/local/opt/postgresql@*/bin",
	"/opt/homebrew/bin",
	"/usr/local/bin",
	"/usr/local/pgsql/bin",
}

// Binaries locates initdb, pg_ctl and postgres.
type Binaries struct {
	Dir      string
	Initdb   string
	PgCtl    string // empty when the installation has no pg_ctl; Start does not need it
	Postgres string
	Version  string // e.g. "15.18", from `postgres --version`
}

// FindBinaries locates the PostgreSQL server binaries: the directory named by
// RESOLVER_PG_BIN if set, else the directory of `postgres` on PATH, else the
// standard installation directories (highest version first).
func FindBinaries() (Binaries, error) {
	if dir := os.Getenv(binDirEnv); dir != "" {
		b, ok := binariesIn(dir)
		if !ok {
			return Binaries{}, fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found in %s=%s: "+
				"point it at the directory holding them, or unset it and %s", binDirEnv, dir, installHint)
		}
		return withVersion(b)
	}

	if p, err := exec.LookPath("postgres"); err == nil {
		if b, ok := binariesIn(filepath.Dir(p)); ok {
			return withVersion(b)
		}
	}
	for _, pattern := range searchPatterns {
		for _, dir := range expandPattern(pattern) {
			if b, ok := binariesIn(dir); ok {
				return withVersion(b)
			}
		}
	}
	return Binaries{}, fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found on PATH or in %s: %s",
		strings.Join(searchPatterns, ", "), installHint)
}

// binariesIn reports whether dir holds a usable server installation. pg_ctl is
// optional because Start runs postgres directly.
func binariesIn(dir string) (Binaries, bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Binaries{}, false
	}
	b := Binaries{
		Dir:      abs,
		Initdb:   filepath.Join(abs, "initdb"),
		PgCtl:    filepath.Join(abs, "pg_ctl"),
		Postgres: filepath.Join(abs, "postgres"),
	}
	if !isExecutable(b.Initdb) || !isExecutable(b.Postgres) {
		return Binaries{}, false
	}
	if !isExecutable(b.PgCtl) {
		b.PgCtl = ""
	}
	return b, true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// expandPattern globs pattern and orders the matches by the version number
// standing in for "*", newest first, so the newest installed major wins.
func expandPattern(pattern string) []string {
	if !strings.Contains(pattern, "*") {
		return []string{pattern}
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil
	}
	prefix, suffix, _ := strings.Cut(pattern, "*")
	key := func(m string) []int {
		return parseVersion(strings.TrimSuffix(strings.TrimPrefix(m, prefix), suffix))
	}
	sort.SliceStable(matches, func(i, j int) bool {
		return compareVersions(key(matches[i]), key(matches[j])) > 0
	})
	return matches
}

// parseVersion turns "9.6" or "16" into numbers; a non-numeric part stops the
// parse so that odd directory names sort below real versions.
func parseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}

func compareVersions(a, b []int) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] - b[i]
		}
	}
	return len(a) - len(b)
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\)\s+(\S+)`)

func withVersion(b Binaries) (Binaries, error) {
	// --version is answered before postgres's refusal to run as root, so this
	// works without switching users.
	out, err := exec.Command(b.Postgres, "--version").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return Binaries{}, fmt.Errorf("run %s --version: %w", b.Postgres, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return Binaries{}, fmt.Errorf("parse output of %s --version: unexpected %q", b.Postgres, strings.TrimSpace(string(out)))
	}
	b.Version = string(m[1])
	return b, nil
}

// majorVersion returns the major release as PG_VERSION spells it: "15" for
// "15.18" or "17devel", "9.6" for "9.6.24".
func majorVersion(v string) string {
	digits := func(s string) string {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return s[:i]
	}
	first, rest, _ := strings.Cut(v, ".")
	first = digits(first)
	if n, err := strconv.Atoi(first); err == nil && n < 10 {
		return first + "." + digits(rest)
	}
	return first
}
