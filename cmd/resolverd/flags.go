package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// errUsage means the flag package already printed what was wrong; errHelp that -h was asked for.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

// flags is a FlagSet whose defaults come from RESOLVER_* environment variables.
type flags struct {
	*flag.FlagSet
	getenv func(string) string
	stderr io.Writer
	errs   []string
	env    []envFlag // values from RESOLVER_* variables, applied by parse
}

type envFlag struct {
	name  string
	apply func()
}

func newFlags(name string, getenv func(string) string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet("resolverd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flags{FlagSet: fs, getenv: getenv, stderr: stderr}
}

// envName is the environment variable of a flag: --database-url → RESOLVER_DATABASE_URL.
func envName(flagName string) string {
	return "RESOLVER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Each helper registers its flag with the built-in default and remembers the environment's value,
// which parse applies to the flags the command line did not set. Help (-h) therefore shows the
// built-in defaults, never a value from the environment: in a pod, RESOLVER_DATABASE_URL and
// RESOLVER_ENCRYPTION_KEYS come from Secrets, and "resolverd serve -h" must not print them.

// fromEnv remembers the value of name's RESOLVER_* variable, read with parse, for parse to apply
// to p; a value it cannot read is reported as not being what the flag wants.
func fromEnv[T any](f *flags, name string, p *T, parse func(string) (T, error), want string) *T {
	v := f.getenv(envName(name))
	if v == "" {
		return p
	}
	x, err := parse(v)
	if err != nil {
		f.errs = append(f.errs, fmt.Sprintf("%s=%q is not %s", envName(name), v, want))
		return p
	}
	f.env = append(f.env, envFlag{name: name, apply: func() { *p = x }})
	return p
}

func usageOf(name, usage string) string { return usage + " (" + envName(name) + ")" }

func (f *flags) string(name, def, usage string) *string {
	return fromEnv(f, name, f.String(name, def, usageOf(name, usage)), func(v string) (string, error) { return v, nil }, "a string")
}

func (f *flags) bool(name string, def bool, usage string) *bool {
	return fromEnv(f, name, f.Bool(name, def, usageOf(name, usage)), strconv.ParseBool, "a boolean (use true or false)")
}

func (f *flags) int(name string, def int, usage string) *int {
	return fromEnv(f, name, f.Int(name, def, usageOf(name, usage)), strconv.Atoi, "a whole number")
}

func (f *flags) float(name string, def float64, usage string) *float64 {
	return fromEnv(f, name, f.Float64(name, def, usageOf(name, usage)),
		func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }, "a number")
}

func (f *flags) duration(name string, def time.Duration, usage string) *time.Duration {
	return fromEnv(f, name, f.Duration(name, def, usageOf(name, usage)), func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err == nil && d < 0 {
			err = errors.New("negative")
		}
		return d, err
	}, "a duration like 720h")
}

// parse parses args and reports environment variables that could not be read. A bad flag is one
// line on stderr (docs/CONTRACT.md §8), pointing at -h, which prints the flags.
func (f *flags) parse(args []string) error {
	f.SetOutput(io.Discard)
	err := f.Parse(args)
	f.SetOutput(f.stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.Usage()
			return errHelp
		}
		fmt.Fprintf(f.stderr, "%s: %s (\"%s -h\" lists the flags)\n", f.Name(), oneLine(err.Error()), f.Name())
		return errUsage
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, e := range f.env {
		if !set[e.name] { // the command line wins over the environment
			e.apply()
		}
	}
	if len(f.errs) > 0 {
		return errors.New(strings.Join(f.errs, "; "))
	}
	return nil
}

// require fails when a required value is empty.
func require(name, value string) error {
	if strings.TrimSpace(value) == "" {
		return fmt.Errorf("--%s (or %s) is required", name, envName(name))
	}
	return nil
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
