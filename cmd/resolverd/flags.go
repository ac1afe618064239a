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

func (f *flags) string(name, def, usage string) *string {
	if v := f.getenv(envName(name)); v != "" {
		def = v
	}
	return f.String(name, def, usage+" ("+envName(name)+")")
}

func (f *flags) bool(name string, def bool, usage string) *bool {
	if v := f.getenv(envName(name)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q is not a boolean (use true or false)", envName(name), v))
		} else {
			def = b
		}
	}
	return f.Bool(name, def, usage+" ("+envName(name)+")")
}

func (f *flags) int(name string, def int, usage string) *int {
	if v := f.getenv(envName(name)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q is not a whole number", envName(name), v))
		} else {
			def = n
		}
	}
	return f.Int(name, def, usage+" ("+envName(name)+")")
}

func (f *flags) float(name string, def float64, usage string) *float64 {
	if v := f.getenv(envName(name)); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q is not a number", envName(name), v))
		} else {
			def = n
		}
	}
	return f.Float64(name, def, usage+" ("+envName(name)+")")
}

func (f *flags) duration(name string, def time.Duration, usage string) *time.Duration {
	if v := f.getenv(envName(name)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q is not a duration like 720h", envName(name), v))
		} else {
			def = d
		}
	}
	return f.Duration(name, def, usage+" ("+envName(name)+")")
}

// parse parses args and reports environment variables that could not be read. A bad flag is one
// line on stderr (SPEC 8), pointing at -h, which prints the flags.
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
