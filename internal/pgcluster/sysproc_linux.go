//go:build linux

package pgcluster

import "syscall"

// sysProcAttr puts the server in its own process group so a Ctrl-C at the
// terminal reaches only us and we decide when the cluster stops. Pdeathsig
// stops the cluster (fast shutdown) if we die without calling Stop; Go applies
// it after switching credentials, so the credential change does not clear it.
// It fires when the forking OS thread exits, which Go only does for threads
// locked with runtime.LockOSThread, so do not Start from such a goroutine.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: cred,
		Pdeathsig:  syscall.SIGINT,
	}
}
