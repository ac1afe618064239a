//go:build !linux

package pgcluster

import "syscall"

// sysProcAttr puts the server in its own process group so a Ctrl-C at the
// terminal reaches only us and we decide when the cluster stops. There is no
// portable parent-death signal outside Linux.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: cred,
	}
}
