package gdpm_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/capy-pl/gdpm"
)

// Embed a whole cluster in one program: an embedded etcd, a master and a
// slave, then run a service of two instances through the Go client.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "gdpm-example-")
	defer os.RemoveAll(dir)

	etcd, err := gdpm.StartEmbeddedEtcd(ctx, gdpm.EmbeddedEtcdConfig{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer etcd.Close()

	master, _ := gdpm.NewMaster(gdpm.MasterConfig{
		Endpoints: etcd.Endpoints(),
		HTTPAddr:  "127.0.0.1:0", // any free port
		TCPAddr:   "127.0.0.1:0",
	})
	if err := master.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer master.Close()

	slave, _ := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{master.TCPAddr()}, LogAddr: "127.0.0.1:0"})
	slave.Start(ctx)
	defer slave.Close()
	slave.WaitReady(ctx)

	client, _ := gdpm.NewClient(gdpm.ClientConfig{Addr: master.HTTPAddr()})
	id, _ := client.CreateService(ctx, gdpm.CreateRequest{Command: "sleep 60", InstanceNum: new(2)})
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	d, err := client.WaitRunning(wctx, id, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("running:", d.Running)
	client.DeleteService(ctx, id)
	// Output: running: 2
}

// Embed only a slave in a service of your own, registering with masters
// elsewhere; Close stops its processes and leaves the cluster.
func ExampleNewSlave() {
	slave, err := gdpm.NewSlave(gdpm.SlaveConfig{
		Masters: []string{"master1.example:8888", "master2.example:8888"},
		Token:   os.Getenv("GDPM_TOKEN"),
		DataDir: "/var/lib/myservice/gdpm",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = slave // slave.Start(ctx) registers in the background; defer slave.Close()
	fmt.Println("configured")
	// Output: configured
}
