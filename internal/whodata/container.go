package whodata

import "strings"

// Container runtimes name a container's cgroup after its 64-hex id, with a
// runtime prefix under systemd ("docker-<id>.scope", "cri-containerd-<id>.
// scope", "crio-<id>.scope", "libpod-<id>.scope") or as a bare path element
// under cgroupfs drivers ("/docker/<id>", "/kubepods/burstable/pod<uid>/<id>").
// Conmon, the podman and CRI-O monitor, runs in its own "*-conmon-<id>"
// cgroup: that is not the container, so it is skipped.
var runtimePrefixes = []string{"docker-", "cri-containerd-", "containerd-", "crio-", "libpod-"}

// ContainerID returns the container id encoded in a cgroup path, or "" when
// the path names no container. Only a full 64-hex id is accepted, so an
// ordinary systemd unit is never mistaken for a container.
func ContainerID(cgroup string) string {
	parts := strings.Split(cgroup, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := strings.TrimSuffix(parts[i], ".scope")
		if strings.Contains(p, "conmon-") {
			continue
		}
		for _, pre := range runtimePrefixes {
			if strings.HasPrefix(p, pre) {
				p = p[len(pre):]
				break
			}
		}
		if isHex64(p) {
			return p
		}
	}
	return ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// cgroupPath picks the process's cgroup from the contents of
// /proc/PID/cgroup: the unified (v2) entry "0::/path" if present, else the
// first v1 entry whose path names a container, else the name=systemd entry.
func cgroupPath(contents string) string {
	var v1, systemd string
	for line := range strings.Lines(contents) {
		line = strings.TrimRight(line, "\n")
		hier, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrl, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case hier == "0" && ctrl == "":
			return path
		case ctrl == "name=systemd":
			systemd = path
		case v1 == "" && ContainerID(path) != "":
			v1 = path
		}
	}
	if v1 != "" {
		return v1
	}
	return systemd
}
