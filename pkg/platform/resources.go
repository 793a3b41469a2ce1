package platform

import (
	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/schema"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

// Resources is every AWS resource kcguard's code expects to exist. Each
// store package describes its own table; this is the one list `config fix`
// creates, `config validate` checks and the template parity test compares.
type Resources struct {
	Tables   []schema.Table
	Queue    schema.Queue
	KMSKeyID string
}

// ResourcesOf lists the resources for a configuration.
func ResourcesOf(cfg config.Config) Resources {
	r := Resources{
		Tables: []schema.Table{
			users.Table(cfg.Tables.Users),
			sessions.Table(cfg.Tables.Sessions),
			tokencache.Table(cfg.Tables.Tokens),
			breaker.Table(cfg.Tables.Breaker),
			audit.Table(cfg.Tables.Audit),
		},
		Queue: schema.Queue{
			Name:                     cfg.Sync.Queue,
			DLQName:                  cfg.Sync.DLQ,
			MaxReceiveCount:          cfg.Sync.MaxReceiveCount,
			VisibilityTimeoutSeconds: cfg.Sync.VisibilityTimeoutSeconds,
		},
		KMSKeyID: cfg.KMSKeyID,
	}
	if cfg.Tables.Journal != "" { // empty: journal off
		r.Tables = append(r.Tables, journal.Table(cfg.Tables.Journal))
	}
	return r
}
