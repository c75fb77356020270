//go:build unix

package scan

import "syscall"

// queueWindow sizes the ordered window. Every queued job may pin its parent
// directory's descriptor, so the window must stay well inside the
// descriptor limit (Go raises the soft limit to the hard one at start).
func queueWindow() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return minWindow
	}
	return int(min(maxWindow, max(minWindow, lim.Cur/4)))
}
