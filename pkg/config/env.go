package config

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var errIOEOF = io.EOF // an empty YAML file is a valid, empty config

var durationType = reflect.TypeOf(time.Duration(0))

// applyEnv sets every field tagged `env:"NAME"` whose variable is present.
// Durations take Go syntax ("2s") or plain seconds; maps take JSON/YAML.
func applyEnv(cfg *Config, lookup func(string) (string, bool)) error {
	return walkEnv(reflect.ValueOf(cfg).Elem(), lookup)
}

func walkEnv(v reflect.Value, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := walkEnv(fv, lookup); err != nil {
				return err
			}
			continue
		}
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		raw, ok := lookup(name)
		if !ok {
			continue
		}
		if err := setFromString(fv, raw); err != nil {
			return fmt.Errorf("environment %s=%q: %w", name, raw, err)
		}
	}
	return nil
}

func setFromString(fv reflect.Value, raw string) error {
	switch {
	case fv.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			secs, err2 := strconv.Atoi(raw)
			if err2 != nil {
				return fmt.Errorf("not a duration: %w", err)
			}
			d = time.Duration(secs) * time.Second
		}
		fv.SetInt(int64(d))
	case fv.Kind() == reflect.String:
		fv.SetString(raw)
	case fv.Kind() == reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("not a whole number")
		}
		fv.SetInt(int64(n))
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not true or false")
		}
		fv.SetBool(b)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		// A JSON/YAML list, or items separated by commas.
		var items []string
		if err := yaml.Unmarshal([]byte(raw), &items); err != nil {
			items = nil
			for _, it := range strings.Split(raw, ",") {
				if it = strings.TrimSpace(it); it != "" {
					items = append(items, it)
				}
			}
		}
		fv.Set(reflect.ValueOf(items))
	case fv.Kind() == reflect.Map:
		m := reflect.New(fv.Type())
		if err := yaml.Unmarshal([]byte(raw), m.Interface()); err != nil {
			return fmt.Errorf("not a JSON object: %w", err)
		}
		fv.Set(m.Elem())
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		// A JSON array, or a comma-separated list (ARNs hold no commas).
		var list []string
		if strings.HasPrefix(strings.TrimSpace(raw), "[") {
			if err := yaml.Unmarshal([]byte(raw), &list); err != nil {
				return fmt.Errorf("not a JSON array of strings: %w", err)
			}
		} else {
			for _, v := range strings.Split(raw, ",") {
				if v = strings.TrimSpace(v); v != "" {
					list = append(list, v)
				}
			}
		}
		fv.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported setting type %s", fv.Type())
	}
	return nil
}
