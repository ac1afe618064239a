package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTicks is the CPU time (user + system) used so far by: the serving replica, this process (the
// load generator), and every PostgreSQL process. Linux only; zero elsewhere.
type cpuTicks struct{ server, client, postgres time.Duration }

const clockTick = 10 * time.Millisecond // USER_HZ is 100 on Linux

func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	k, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+k) * clockTick
}

func postgresCPU() time.Duration {
	var total time.Duration
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm")); err == nil && strings.HasPrefix(string(comm), "postgres") {
			total += procCPU(pid)
		}
	}
	return total
}

func sampleCPU(serverPID int) cpuTicks {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpuTicks{server: procCPU(serverPID), client: self, postgres: postgresCPU()}
}

// perCall is the CPU each side spent per call between two samples.
func (a cpuTicks) perCall(b cpuTicks, calls int) cpuTicks {
	if calls == 0 {
		return cpuTicks{}
	}
	n := time.Duration(calls)
	return cpuTicks{server: (b.server - a.server) / n, client: (b.client - a.client) / n, postgres: (b.postgres - a.postgres) / n}
}

// cpuRatios is, for each round, the serving replica's CPU per warm resolution over its CPU per
// health check, with the two figures it divides: the share of a resolution that is resolverd's own
// work (authentication, the decision, rendering, the audit record and the garbage they make)
// beside the gRPC and HTTP/2 work both calls share.
func cpuRatios(health, resolve []cpuTicks) string {
	var out []string
	for i := range min(len(health), len(resolve)) {
		if health[i].server <= 0 {
			out = append(out, "n/a")
			continue
		}
		out = append(out, fmt.Sprintf("%.2f (%.1f/%.1f µs)", float64(resolve[i].server)/float64(health[i].server),
			float64(resolve[i].server)/1e3, float64(health[i].server)/1e3))
	}
	return strings.Join(out, ", ")
}
