package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/provision"
)

func newConfigCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Validate the configuration and the resources it names, or create what is missing",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check settings, Keycloak realms and clients, tables, queues and the KMS key",
		Long: `validate prints a checklist (✓ / ✗) and exits 1 when any check fails:
settings in range; Keycloak reachable; per package, the realm and client exist
and the client's service account can list users; every table exists with the
right keys, indexes and TTL attribute; the sync queue and its dead-letter
queue exist, are FIFO and are linked; the token-encryption KMS key exists;
per package, the realm records the admin events (with details) and the user
password events 'sync pull' reads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.runValidate(cmd.Context())
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "fix",
		Short: "Create missing tables, queues and the KMS key alias, then validate (never deletes)",
		Long: `fix creates what validate would find missing: DynamoDB tables (with their
indexes and TTL), the SQS FIFO sync queue with its FIFO dead-letter queue, and
the KMS key alias for token encryption, and turns on each realm's admin events
(with details) and password user events for 'sync pull' (PUT
/admin/realms/{realm}/events/config; other event settings are kept). It never
deletes or recreates anything;
a resource with the wrong shape is reported, not changed. Keycloak realms are
not created: they belong to the Keycloak operators.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := e.runFix(cmd.Context()); err != nil {
				return err
			}
			return e.runValidate(cmd.Context())
		},
	})
	return cmd
}

func (e *env) mark(c provision.Check) {
	if e.asJSON {
		e.checks = append(e.checks, checkJSON{Name: c.Name, OK: c.OK, Detail: c.Detail})
		return
	}
	sign := "✓"
	if !c.OK {
		sign = "✗"
	}
	e.printf("%s %s: %s\n", sign, c.Name, c.Detail)
}

func (e *env) runValidate(ctx context.Context) error {
	var checks []provision.Check
	cfg := e.cfg
	settings := provision.Check{Name: "settings"}
	if err := cfg.Validate(); err != nil {
		settings.Detail = err.Error()
	} else {
		settings.OK = true
		settings.Detail = fmt.Sprintf("%d packages, resilience in range", len(cfg.Keycloak.Packages))
	}
	checks = append(checks, settings)
	checks = append(checks, platform.CheckKeycloak(ctx, cfg, e.log)...)
	if awsCfg, err := e.awsConfig(ctx); err != nil {
		checks = append(checks, provision.Check{Name: "aws", Detail: err.Error()})
	} else {
		checks = append(checks, platform.CheckResources(ctx, cfg, awsCfg)...)
	}
	failed := 0
	for _, c := range checks {
		e.mark(c)
		if !c.OK {
			failed++
		}
	}
	if failed > 0 {
		if !e.asJSON {
			e.printf("%d of %d checks failed\n", failed, len(checks))
		}
		return errChecksFailed
	}
	if !e.asJSON {
		e.printf("all %d checks passed\n", len(checks))
	}
	return nil
}

func (e *env) runFix(ctx context.Context) error {
	cfg, err := e.validated()
	if err != nil {
		return err
	}
	awsCfg, err := e.awsConfig(ctx)
	if err != nil {
		return err
	}
	if err := platform.EnsureResources(ctx, cfg, awsCfg, func(what, did string) { e.printf("• %s: %s\n", what, did) }); err != nil {
		return err
	}
	kc, err := platform.KeycloakClient(cfg, e.log)
	if err != nil {
		return err
	}
	for _, name := range cfg.PackageNames() {
		did, err := provision.FixEvents(ctx, kc, name)
		if err != nil {
			// Reported, not fatal: validate names what the realm lacks.
			e.printf("✗ events of package %s: %v\n", name, err)
			continue
		}
		e.printf("• events of package %s: %s\n", name, did)
	}
	return nil
}
