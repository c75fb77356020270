package cli

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockBaseline takes an exclusive lock beside the baseline for the
// duration of a command that rewrites it. Two accepts at once would each
// write a new generation from the same old one, and the second rename
// would silently drop the first's acceptance.
func lockBaseline(sp statePaths) (unlock func(), err error) {
	f, err := os.OpenFile(sp.db+".lock", os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock baseline %s: %w", sp.db, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if err == unix.EWOULDBLOCK {
			fmt.Fprintf(os.Stderr, "vigil: waiting for another vigil process to finish with %s\n", sp.db)
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock baseline %s: %w", sp.db, err)
		}
	}
	return func() { f.Close() }, nil
}
