//go:build linux

// Command fanotify-floor is the least a fanotify watcher can do: it marks
// a filesystem with the mask `vigil watch` uses, in the same reporting
// mode, and reads events into a buffer it throws away. Nothing is
// resolved, stat'ed, hashed or printed. bench/watch-overhead.sh runs it
// beside the workload to measure what the kernel's fanotify work alone
// adds to a writer, the floor under any fanotify-based watcher.
//
//	go run ./bench/fanotify-floor DIR   (as root; prints "ready", then counts on SIGINT/SIGTERM)
package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fanotify-floor DIR")
		os.Exit(2)
	}
	// The flags and mask of internal/watch/fanotify.
	flags := uint(unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_REPORT_DFID_NAME |
		unix.FAN_REPORT_FID | unix.FAN_REPORT_TARGET_FID | unix.FAN_UNLIMITED_QUEUE)
	fd, err := unix.FanotifyInit(flags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanotify_init:", err)
		os.Exit(1)
	}
	mask := uint64(unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_CREATE | unix.FAN_DELETE |
		unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_ATTRIB | unix.FAN_ONDIR)
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, unix.AT_FDCWD, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "fanotify_mark:", err)
		os.Exit(1)
	}
	var bytes, reads atomic.Int64
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Printf("read %d bytes of events in %d reads\n", bytes.Load(), reads.Load())
		os.Exit(0)
	}()
	fmt.Println("ready")
	buf := make([]byte, 256<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
		bytes.Add(int64(n))
		reads.Add(1)
		if n >= 16<<10 {
			time.Sleep(5 * time.Millisecond) // as the watcher batches bursts
		}
	}
}
