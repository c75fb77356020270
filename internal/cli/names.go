package cli

import (
	"fmt"
	"os/user"
	"strconv"
	"sync"
)

// nameCache caches id-to-name lookups: a report of thousands of changes
// would otherwise read /etc/passwd thousands of times. An id without a
// name is shown as the number.
type nameCache struct {
	mu     sync.Mutex
	names  map[uint32]string
	lookup func(id string) (string, error)
}

func (c *nameCache) name(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.names[id]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(id), 10)
	if name, err := c.lookup(n); err == nil {
		n = name
	}
	if c.names == nil {
		c.names = map[uint32]string{}
	}
	c.names[id] = n
	return n
}

var (
	userNames = nameCache{lookup: func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	}}
	groupNames = nameCache{lookup: func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	}}
)

func userName(uid uint32) string  { return userNames.name(uid) }
func groupName(gid uint32) string { return groupNames.name(gid) }

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
