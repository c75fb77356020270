//go:build !linux

package whodata

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errNoAudit: the audit subsystem is Linux's; elsewhere attribution comes
// from the watcher's own process information only.
var errNoAudit = fmt.Errorf("linux audit: %w", errors.ErrUnsupported)

type auditSource struct{ listener bool }

func openAudit(auditConfig, *index, procReader, *userNames, func(Notice)) (*auditSource, error) {
	return nil, errNoAudit
}

func (*auditSource) close() error { return nil }

func (*auditSource) sync(context.Context, time.Time, time.Duration) bool { return false }

// AuditRules lists the audit rules tagged key; Linux only.
func AuditRules(string) ([]string, error) { return nil, errNoAudit }

// CleanupAuditRules deletes the audit rules tagged key; Linux only.
func CleanupAuditRules(string) (int, error) { return 0, errNoAudit }
