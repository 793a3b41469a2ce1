package platform_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/schema"
)

// ResourcesOf gives each table setting (tables.users, KCGUARD_TABLE_USERS)
// the pkg/schema table of the same name (schema.Tables["USERS"]), the one
// the templates give that variable: `config fix` creates what the stacks
// deploy.
func TestResourcesAreTheSchemaTablesUnderTheirSettings(t *testing.T) {
	cfg := config.Default()
	cfg.Tables.Journal = "kcguard-journal" // on, whatever the default
	byName := map[string]schema.Table{}
	for _, tb := range platform.ResourcesOf(cfg).Tables {
		byName[tb.Name] = tb
	}
	tables := reflect.ValueOf(cfg.Tables)
	for i := 0; i < tables.NumField(); i++ {
		suffix, ok := strings.CutPrefix(tables.Type().Field(i).Tag.Get("env"), "KCGUARD_TABLE_")
		name := tables.Field(i).String()
		if want, known := schema.Tables[suffix]; !ok || !known {
			t.Errorf("tables.%s: no schema table for %q", tables.Type().Field(i).Name, suffix)
		} else if !reflect.DeepEqual(byName[name], want.Named(name)) {
			t.Errorf("%s: ResourcesOf has %+v, schema.Tables[%q] is %+v", name, byName[name], suffix, want)
		}
	}
	if len(byName) != len(schema.Tables) || tables.NumField() != len(schema.Tables) {
		t.Errorf("ResourcesOf has %d tables, config %d settings, pkg/schema %d", len(byName), tables.NumField(), len(schema.Tables))
	}
}
