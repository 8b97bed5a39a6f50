package proxy_test

import (
	"testing"
	"time"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestSplitWithoutServerUser: a database with replicas and no server user
// (the documented default: each client logs in as itself) is split all
// the same: its replicas are monitored as the first user with a plaintext
// password (app), SHOW REPLICAS lists them, and reads go to the replica.
func TestSplitWithoutServerUser(t *testing.T) {
	t.Parallel()
	const db = "splitnouser"
	replicaDatabase(t, cluster, db)
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.ReplicaCheckInterval = 100 * time.Millisecond
		c.Proxy.Routing.ReadFunctions = []string{"inet_server_port"} // portQuery is a plain read here
		c.Proxy.Databases[db] = proxy.Database{
			Host: cluster.Primary.Host, Port: cluster.Primary.Port,
			Replicas: []proxy.Replica{{Host: cluster.Replica.Host, Port: cluster.Replica.Port}},
		}
	}, nil)
	admin := p.console(t, adminUser, adminPassword)
	eventually(t, "the replica healthy in SHOW REPLICAS", func() bool {
		row := show(t, admin, "SHOW REPLICAS").row("database", db)
		return row != nil && row["state"] == "healthy"
	})
	waitForReplicaReads(t, connect(t, p.DSN(appUser, appPassword, db)), cluster)
}
