package testcluster

import "syscall"

// sysProcAttr makes a node die with the test process that started it, so
// that no node outlives a test binary killed by a timeout.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
