package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kcguard/kcguard/pkg/schema"
)

// template.yaml's tables are written from pkg/schema, between these lines.
const (
	tablesBegin = "  # --- tables: generated from pkg/schema by `make template-tables`, do not edit ---\n"
	tablesEnd   = "  # --- end of the generated tables ---\n"
)

var updateTemplate = flag.Bool("update-template", false, "rewrite template.yaml's tables from pkg/schema")

// The tables in template.yaml are pkg/schema's, as `make template-tables`
// writes them.
func TestTemplateTablesAreGenerated(t *testing.T) {
	data, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	begin, end := bytes.Index(data, []byte(tablesBegin)), bytes.Index(data, []byte(tablesEnd))
	if begin < 0 || end < begin {
		t.Fatalf("template.yaml: no generated tables block (%q ... %q)", tablesBegin, tablesEnd)
	}
	have, want := string(data[begin+len(tablesBegin):end]), samTables()
	if have == want {
		return
	}
	if !*updateTemplate {
		t.Fatalf("template.yaml's tables differ from pkg/schema: run `make template-tables`")
	}
	out := append(append(append([]byte{}, data[:begin+len(tablesBegin)]...), want...), data[end:]...)
	if err := os.WriteFile("../template.yaml", out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// samTables renders schema.Tables as template.yaml's resources: on-demand,
// point-in-time recovery, encrypted, kept when the stack goes.
func samTables() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	keys := func(indent string, pk schema.Key, sk *schema.Key) {
		p("%s- {AttributeName: %s, KeyType: HASH}", indent, pk.Name)
		if sk != nil {
			p("%s- {AttributeName: %s, KeyType: RANGE}", indent, sk.Name)
		}
	}
	for _, env := range sortedKeys(schema.Tables) {
		tb := schema.Tables[env]
		p("")
		p("  %s:", TableLogicalID(env))
		p("    Type: AWS::DynamoDB::Table")
		p("    DeletionPolicy: Retain")
		p("    UpdateReplacePolicy: Retain")
		p("    Properties:")
		p("      BillingMode: PAY_PER_REQUEST")
		p("      AttributeDefinitions:")
		seen := map[string]bool{}
		for _, k := range attributes(tb) {
			if !seen[k.Name] {
				seen[k.Name] = true
				p("        - {AttributeName: %s, AttributeType: %s}", k.Name, k.Type)
			}
		}
		p("      KeySchema:")
		keys("        ", tb.PartitionKey, tb.SortKey)
		if len(tb.Indexes) > 0 {
			p("      GlobalSecondaryIndexes:")
		}
		for _, ix := range tb.Indexes {
			p("        - IndexName: %s", ix.Name)
			p("          KeySchema:")
			keys("            ", ix.PartitionKey, ix.SortKey)
			projection := "ALL"
			if ix.KeysOnly {
				projection = "KEYS_ONLY"
			}
			p("          Projection: {ProjectionType: %s}", projection)
		}
		if tb.TTLAttribute != "" {
			p("      TimeToLiveSpecification: {AttributeName: %s, Enabled: true}", tb.TTLAttribute)
		}
		p("      PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}")
		p("      SSESpecification: {SSEEnabled: true}")
	}
	p("")
	return b.String()
}

// attributes are the key attributes of a table and its indexes, in order.
func attributes(tb schema.Table) []schema.Key {
	out := []schema.Key{tb.PartitionKey}
	if tb.SortKey != nil {
		out = append(out, *tb.SortKey)
	}
	for _, ix := range tb.Indexes {
		out = append(out, ix.PartitionKey)
		if ix.SortKey != nil {
			out = append(out, *ix.SortKey)
		}
	}
	return out
}
