package config

import (
	"strings"
	"testing"
	"time"
)

func TestReplaySettings(t *testing.T) {
	valid := func() Config {
		c := Default()
		c.Keycloak.Packages = map[string]Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
		return c
	}
	cases := map[string]struct {
		mutate func(*Config)
		want   string // "" means valid
	}{
		"defaults":              {func(*Config) {}, ""},
		"topic":                 {func(c *Config) { c.Alerts.TopicARN = "arn:aws:sns:eu-west-1:123456789012:kcguard-alerts" }, ""},
		"topic not an arn":      {func(c *Config) { c.Alerts.TopicARN = "kcguard-alerts" }, "alerts.topic_arn"},
		"budget over gateway":   {func(c *Config) { c.AWS.CallBudget = 29 * time.Second }, "aws.call_budget"},
		"attempt above budget":  {func(c *Config) { c.AWS.AttemptTimeout = 5 * time.Second }, "aws.attempt_timeout"},
		"no attempt timeout":    {func(c *Config) { c.AWS.AttemptTimeout = 0 }, "aws.attempt_timeout"},
		"no attempts":           {func(c *Config) { c.AWS.MaxAttempts = 0 }, "aws.max_attempts"},
		"worker function given": {func(c *Config) { c.Sync.WorkerFunction = "kcguard-syncworker" }, ""},
	}
	for name, tc := range cases {
		c := valid()
		tc.mutate(&c)
		err := c.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	c, err := load("", env(map[string]string{
		"KCGUARD_ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t", "KCGUARD_SYNC_WORKER_FUNCTION": "fn",
		"KCGUARD_SYNC_EVENT_SOURCE_MAPPING": "uuid-1", "KCGUARD_AWS_ATTEMPT_TIMEOUT": "1s",
		"KCGUARD_AWS_CALL_BUDGET": "3", "KCGUARD_AWS_MAX_ATTEMPTS": "2"}))
	if err != nil || c.Alerts.TopicARN != "arn:aws:sns:eu-west-1:1:t" || c.Sync.WorkerFunction != "fn" ||
		c.Sync.EventSourceMapping != "uuid-1" || c.AWS != (AWS{AttemptTimeout: time.Second, CallBudget: 3 * time.Second, MaxAttempts: 2}) {
		t.Fatalf("environment: %+v %+v %+v %v", c.Alerts, c.Sync, c.AWS, err)
	}
}
