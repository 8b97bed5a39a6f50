// Package config owns pgone's configuration file: the YAML schema, strict
// decoding, defaults, validation and the problem report that `pgone check`
// prints.
//
// The schema is composed, not defined here: each part owns its Config struct
// with Defaults and Validate (proxy.Config holds the top-level keys,
// pool.Config the `pool` section, cache.Config the `cache` section), and Config only adds the sections no part
// owns (`log`, `http`). configs/pgone.yaml documents every key and its
// default; tests keep it in step with Defaults.
//
// Lifecycle:
//
//  1. Load reads the file; Parse decodes it with yaml.v3 in strict mode: an
//     unknown key, a type mismatch, a duplicate key, an empty file or more than
//     one document is a Problem with its full dotted key path (such as
//     "pool.pool_size" or "databases.app.replicas[0].port") and its line.
//  2. Defaults fills every unset field, part by part.
//  3. Validate runs each part's rules and turns their "key: message" errors
//     into Problems. Decode and validation problems come back together in one
//     *Error, so a user fixes the whole file in one pass.
//  4. The caller treats the result as an immutable snapshot. On reload
//     (SIGHUP, the console's RELOAD) it loads a new one and swaps it in
//     atomically (atomic.Pointer); if the new file has problems, the old
//     snapshot stays. Nothing here is global and nothing is mutated after
//     Load returns, so snapshots need no locks.
//
// Secrets: a Problem never quotes a password, and Redacted returns a copy
// with every password masked for logs and SHOW CONFIG.
package config
