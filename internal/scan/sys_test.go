//go:build linux

package scan

import (
	"os"

	"golang.org/x/sys/unix"
)

func mkfifo(p string) error { return unix.Mkfifo(p, 0o600) }

func mount(src, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(src, target, fstype, flags, data)
}

func unmount(target string) { _ = unix.Unmount(target, unix.MNT_DETACH) }

// mkdirDeep creates n nested directories called name below root, and a
// file "f" in the deepest, walking down with *at calls since the path
// outgrows PATH_MAX.
func mkdirDeep(root, name string, n int) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	for range n {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			unix.Close(fd)
			return err
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = nfd
	}
	f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY, 0o644)
	unix.Close(fd)
	if err != nil {
		return err
	}
	return os.NewFile(uintptr(f), "f").Close()
}
