package proxy

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/pgone/pgone/pool"
)

// ConfigRow is one line of SHOW CONFIG.
type ConfigRow struct {
	Key, Value, Default string
	// Changeable: RELOAD applies a new value (otherwise it needs a restart).
	Changeable bool
}

// secretMask replaces secrets in SHOW CONFIG (as config.PasswordMask).
const secretMask = "***"

// ConfigRows flattens a configuration struct into SHOW CONFIG rows: one per
// leaf value, keyed by its YAML path ("pool.pool_size",
// "databases.app.port", "admin_users"). defaults is the same type with only
// defaults applied; fixed lists the keys a reload cannot change. Any key
// naming a password is masked, whatever the caller passed.
func ConfigRows(cfg, defaults any, fixed ...string) []ConfigRow {
	values := map[string]string{}
	flatten(values, "", reflect.ValueOf(cfg))
	defs := map[string]string{}
	if defaults != nil {
		flatten(defs, "", reflect.ValueOf(defaults))
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([]ConfigRow, 0, len(keys))
	for _, k := range keys {
		changeable := true
		for _, f := range fixed {
			if k == f {
				changeable = false
			}
		}
		rows = append(rows, ConfigRow{Key: k, Value: maskSecret(k, values[k]), Default: maskSecret(k, defs[k]), Changeable: changeable})
	}
	return rows
}

// ownConfigRows is SHOW CONFIG when cmd gave no source: the proxy and pool
// sections this server runs with.
func ownConfigRows(cfg Config, poolCfg pool.Config) []ConfigRow {
	type view struct {
		Proxy Config      `yaml:",inline"`
		Pool  pool.Config `yaml:"pool"`
	}
	var def view
	def.Proxy.Defaults()
	def.Pool.Defaults()
	return ConfigRows(view{cfg, poolCfg}, def, "listen")
}

// maskSecret hides the value of any key that names a password or secret.
func maskSecret(key, value string) string {
	last := key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		last = key[i+1:]
	}
	last = strings.ToLower(last)
	if value != "" && (strings.Contains(last, "password") || strings.Contains(last, "secret")) {
		return secretMask
	}
	return value
}

func flatten(out map[string]string, key string, v reflect.Value) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			out[key] = ""
			return
		}
		v = v.Elem()
	}
	join := func(name string) string {
		if key == "" {
			return name
		}
		if name == "" {
			return key
		}
		return key + "." + name
	}
	switch {
	case v.Type() == reflect.TypeOf(time.Duration(0)):
		out[key] = time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" && !strings.Contains(opts, "inline") {
				name = strings.ToLower(f.Name)
			}
			flatten(out, join(name), v.Field(i))
		}
	case v.Kind() == reflect.Map:
		keys := v.MapKeys()
		if len(keys) == 0 {
			out[key] = ""
			return
		}
		for _, k := range keys {
			flatten(out, join(fmt.Sprint(k.Interface())), v.MapIndex(k))
		}
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		elem := v.Type().Elem()
		for elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		if elem.Kind() == reflect.Struct || elem.Kind() == reflect.Map {
			for i := 0; i < v.Len(); i++ {
				flatten(out, fmt.Sprintf("%s[%d]", key, i), v.Index(i))
			}
			if v.Len() == 0 {
				out[key] = ""
			}
			return
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		out[key] = strings.Join(parts, ",")
	default:
		out[key] = fmt.Sprint(v.Interface())
	}
}
