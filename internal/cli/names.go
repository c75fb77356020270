package cli

import (
	"fmt"
	"os/user"
	"strconv"
	"sync"
)

// Name lookups are cached: a report of thousands of changes would
// otherwise read /etc/passwd thousands of times.
var (
	nameMu     sync.Mutex
	userNames  = map[uint32]string{}
	groupNames = map[uint32]string{}
)

func groupName(gid uint32) string {
	nameMu.Lock()
	defer nameMu.Unlock()
	if n, ok := groupNames[gid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(n); err == nil {
		n = g.Name
	}
	groupNames[gid] = n
	return n
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
