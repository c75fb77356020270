package control

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/vigilfim/vigil/internal/change"
)

// ProcessActor describes the process running Vigil as who-data: the real
// uid and the login uid from /proc/self/loginuid, which the kernel keeps
// across su and sudo, so "sudo vigil change approve" is still the person
// who logged in.
func ProcessActor() *change.Actor {
	a := &change.Actor{UID: uint32(os.Getuid()), Attribution: "proc"}
	a.User = userName(a.UID)
	if b, err := os.ReadFile("/proc/self/loginuid"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil && uint32(n) != change.NoAUID {
			auid := uint32(n)
			a.AUID = &auid
			a.LoginUser = userName(auid)
		}
	}
	return a
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return ""
}

// UnknownIdentityError refuses a change-control action by someone the
// policy's people directory does not know.
type UnknownIdentityError struct {
	Actor *change.Actor
}

func (e *UnknownIdentityError) Error() string {
	a := e.Actor
	who := fmt.Sprintf("uid %d", a.UID)
	if a.User != "" {
		who += " (" + a.User + ")"
	}
	if a.AUID != nil {
		who = fmt.Sprintf("login uid %d", *a.AUID)
		if a.LoginUser != "" {
			who += " (" + a.LoginUser + ")"
		}
	}
	return fmt.Sprintf("%s is not in the policy's people directory: change-control actions need a person (add the uid or login to a person's uids or logins)", who)
}

// Caller returns the person running this process: the login uid if set,
// else the real uid (and user name), mapped through the directory. It
// never takes a name from the command line: whoever runs the command is
// who acts.
func (c *Controller) Caller() (*change.Person, error) {
	a := ProcessActor()
	p := c.cl.Resolve(a)
	if p == nil {
		return nil, &UnknownIdentityError{Actor: a}
	}
	return p, nil
}

// ActorFields builds the classifier's actor from who-data given as plain
// fields (watch's whodata.Who maps onto them one to one). It returns nil
// when there is no who-data: attribution "unavailable" or "" or no uid.
// An auid of change.NoAUID (4294967295) means unset.
func ActorFields(attribution string, uid, auid *uint32, user, loginUser, exe, comm string) *change.Actor {
	if uid == nil || attribution == "" || attribution == "unavailable" {
		return nil
	}
	a := &change.Actor{UID: *uid, User: user, LoginUser: loginUser, Exe: exe, Comm: comm, Attribution: attribution}
	if auid != nil && *auid != change.NoAUID {
		v := *auid
		a.AUID = &v
	}
	return a
}
