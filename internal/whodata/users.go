package whodata

import (
	"os/user"
	"strconv"
	"sync"
)

// maxUserCache bounds the uid → name cache. Hosts have few users; a cache
// that fills up (say, uids from many containers) is simply cleared.
const maxUserCache = 4096

// userNames maps uids to user names with a cache: os/user reads
// /etc/passwd (or NSS) on every call, too slow for every event. Unknown
// uids are cached too, as "".
type userNames struct {
	mu    sync.Mutex
	names map[uint32]string
}

func (u *userNames) name(uid uint32) string {
	if uid == UnsetID {
		return ""
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.names[uid]; ok {
		return n
	}
	var n string
	if usr, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		n = usr.Username
	}
	if u.names == nil || len(u.names) >= maxUserCache {
		u.names = make(map[uint32]string)
	}
	u.names[uid] = n
	return n
}

// fill sets User and LoginUser from UID and AUID.
func (u *userNames) fill(w *Who) {
	if w.UID != nil {
		w.User = u.name(*w.UID)
	}
	if w.AUID != nil {
		w.LoginUser = u.name(*w.AUID)
	}
}
