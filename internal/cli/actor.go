package cli

import (
	"os"
	"strconv"
	"strings"
)

// unsetLoginUID is the kernel's "no login uid" value in /proc/self/loginuid.
const unsetLoginUID = 4294967295

// actor describes who runs this command: the real user and the login user
// (auid) the kernel keeps across su and sudo. Records of acceptances and
// approvals name both, so "root accepted it" still says which person.
type actor struct {
	UID       uint32 `json:"uid"`
	User      string `json:"user"`
	AUID      uint32 `json:"auid"`
	LoginUser string `json:"login_user,omitempty"`
}

func currentActor() actor {
	a := actor{UID: uint32(os.Getuid()), AUID: unsetLoginUID}
	a.User = userName(a.UID)
	if b, err := os.ReadFile("/proc/self/loginuid"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			a.AUID = uint32(n)
		}
	}
	if a.AUID != unsetLoginUID {
		a.LoginUser = userName(a.AUID)
	}
	return a
}

// String names the actor as a person would: "alice" or "root (login alice)".
func (a actor) String() string {
	if a.LoginUser != "" && a.LoginUser != a.User {
		return a.User + " (login " + a.LoginUser + ")"
	}
	return a.User
}
