package whodata

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxProcRead bounds what is read from one /proc file: a cmdline can be
// megabytes long, and an event record has no use for all of it.
const maxProcRead = 64 << 10

// procReader reads process identity from a procfs mount. Root is "/proc"
// except in tests.
type procReader struct {
	root string
}

// read returns what /proc says about pid, or an error if the process is
// gone (or unreadable). Fields that cannot be read are left empty rather
// than failing the whole read: a process may exit half-way.
func (p procReader) read(pid int) (*Who, error) {
	dir := filepath.Join(p.root, strconv.Itoa(pid))
	status, err := readBounded(filepath.Join(dir, "status"))
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	w := &Who{PID: pid}
	parseStatus(string(status), w)
	if b, err := readBounded(filepath.Join(dir, "loginuid")); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			w.AUID = ptr(uint32(v))
		}
	}
	if b, err := readBounded(filepath.Join(dir, "sessionid")); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			w.Session = ptr(uint32(v))
		}
	}
	if b, err := readBounded(filepath.Join(dir, "comm")); err == nil {
		w.Comm = strings.TrimSuffix(string(b), "\n")
	}
	w.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	w.Cwd, _ = os.Readlink(filepath.Join(dir, "cwd"))
	if b, err := readBounded(filepath.Join(dir, "cmdline")); err == nil {
		w.Cmdline = splitArgv(b)
	}
	if b, err := readBounded(filepath.Join(dir, "stat")); err == nil {
		w.TTY = ttyFromStat(string(b))
	}
	p.readCgroup(pid, w)
	return w, nil
}

// readCgroup fills Cgroup and ContainerID.
func (p procReader) readCgroup(pid int, w *Who) {
	b, err := readBounded(filepath.Join(p.root, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return
	}
	w.Cgroup = cgroupPath(string(b))
	w.ContainerID = ContainerID(w.Cgroup)
}

// exe returns the executable of a live process.
func (p procReader) exe(pid int) (string, error) {
	return os.Readlink(filepath.Join(p.root, strconv.Itoa(pid), "exe"))
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Grow as the file really is: /proc files are small, and allocating
	// the bound for every read was most of the attribution cost under load.
	buf := make([]byte, 0, 512)
	for len(buf) < maxProcRead {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), maxProcRead-len(buf)))
		}
		m, err := f.Read(buf[len(buf):min(cap(buf), maxProcRead)])
		buf = buf[:len(buf)+m]
		if err != nil || m == 0 {
			break
		}
	}
	return buf, nil
}

// parseStatus takes PPid, Uid (real, effective) and Gid (real) from
// /proc/PID/status.
func parseStatus(s string, w *Who) {
	for line := range strings.Lines(s) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		switch key {
		case "PPid":
			w.PPID, _ = strconv.Atoi(f[0])
		case "Uid":
			w.UID = parseID(f[0])
			if len(f) > 1 {
				w.EUID = parseID(f[1])
			}
		case "Gid":
			w.GID = parseID(f[0])
		}
	}
}

func parseID(s string) *uint32 {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil
	}
	return ptr(uint32(v))
}

// splitArgv splits a NUL-separated argument vector (cmdline, proctitle).
func splitArgv(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	argv := make([]string, len(parts))
	for i, p := range parts {
		argv[i] = string(p)
	}
	return argv
}

// ttyFromStat decodes tty_nr, field 7 of /proc/PID/stat. The command name
// (field 2) may contain spaces and parentheses, so fields are counted from
// the last ')'.
func ttyFromStat(stat string) string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 5 { // state ppid pgrp session tty_nr
		return ""
	}
	nr, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil || nr == 0 {
		return ""
	}
	return ttyName(uint32(nr))
}

// ttyName names a terminal device number as ps does. Only the common
// majors are known; others are shown as major:minor rather than guessed.
func ttyName(nr uint32) string {
	major := (nr >> 8) & 0xfff
	minor := (nr & 0xff) | ((nr >> 12) & 0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return "pts/" + strconv.FormatUint(uint64((major-136)*256+minor), 10)
	case major == 4 && minor < 64:
		return "tty" + strconv.FormatUint(uint64(minor), 10)
	case major == 4:
		return "ttyS" + strconv.FormatUint(uint64(minor-64), 10)
	case major == 5 && minor == 1:
		return "console"
	}
	return fmt.Sprintf("%d:%d", major, minor)
}
