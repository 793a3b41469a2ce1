package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/status"
)

func newBreakerCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "breaker",
		Short: "Show or force the fleet-wide Keycloak circuit breaker",
		Long: `The breaker's state is one DynamoDB item shared by every kcguard instance.
A forced-open breaker stays open until "close" or "reset": use it to take
Keycloak out of the login path during maintenance.`,
	}
	op := func(use, short string, f func(*breaker.Breaker, context.Context) (breaker.Status, error)) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				b, err := e.breaker(cmd.Context())
				if err != nil {
					return err
				}
				st, err := f(b, cmd.Context())
				if err != nil {
					return err
				}
				e.printStatus(st)
				return nil
			},
		}
	}
	cmd.AddCommand(
		op("status", "Show state, generation, since, failures and the next probe time", (*breaker.Breaker).Status),
		op("open", "Force the breaker open for the whole fleet (until close or reset)", (*breaker.Breaker).ForceOpen),
		op("close", "Close the breaker for the whole fleet now (releases a forced open)", (*breaker.Breaker).ForceClose),
		op("reset", "Write a fresh closed state (also repairs a corrupt item)", (*breaker.Breaker).Reset),
	)
	return cmd
}

// breaker is the runtime's breaker, so an operator's open or close alerts
// and pauses or resumes the sync worker like any other transition.
func (e *env) breaker(ctx context.Context) (*breaker.Breaker, error) {
	rt, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}
	return rt.Breaker, nil
}

func (e *env) printStatus(st breaker.Status) {
	if e.asJSON {
		_ = e.printJSON(status.BreakerOf(st))
		return
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), time.Until(t).Round(time.Second))
	}
	e.printf("breaker:     %s\n", st.Breaker)
	e.printf("state:       %s", st.State)
	if st.Forced {
		e.printf(" (forced by operator)")
	}
	e.printf("\ngeneration:  %d\nsince:       %s\nfailures:    %d\nnext probe:  %s\n",
		st.Generation, when(st.Since), st.Failures, when(st.NextProbe))
	if st.Reason != "" {
		e.printf("reason:      %s\n", st.Reason)
	}
	if st.Fallback {
		e.printf("store:       UNREACHABLE, this instance uses its in-process breaker (%s)\n", st.StoreError)
	}
}
