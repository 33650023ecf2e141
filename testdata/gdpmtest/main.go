// Command gdpmtest is the program gdpm's tests run as a service. Its first
// argument picks a behaviour:
//
//	sleep                 run until killed
//	exit CODE [DELAY]     exit with CODE after DELAY (a Go duration, default 0)
//	ignoreterm            ignore SIGTERM; run until SIGKILL
//	fork N                start N grandchildren that sleep, then sleep
//	print [INTERVAL]      print a numbered line every INTERVAL to stdout and stderr
//	lines N [INTERVAL]    print "out I" for I < N every INTERVAL to stdout, and
//	                      "err I" to stderr when I is a multiple of 10, then sleep
//	env NAME              print the value of NAME and the working dir, then sleep
//	listen NAME           listen on 127.0.0.1 at the port in variable NAME and
//	                      accept connections until killed
//	http NAME             serve HTTP on 127.0.0.1 at the port in variable NAME:
//	                      /healthz answers 200, any other path 404
//	spin                  burn one core until killed
//	alloc MB              allocate and touch MB megabytes, then sleep
//	limits                print the process's /proc/self/limits, then sleep
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gdpmtest MODE [ARGS]")
		os.Exit(2)
	}
	arg := func(i int, def string) string {
		if len(os.Args) > i {
			return os.Args[i]
		}
		return def
	}
	switch os.Args[1] {
	case "sleep":
		forever()
	case "exit":
		code, _ := strconv.Atoi(arg(2, "0"))
		d, _ := time.ParseDuration(arg(3, "0s"))
		time.Sleep(d)
		os.Exit(code)
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		forever()
	case "fork":
		n, _ := strconv.Atoi(arg(2, "2"))
		for i := 0; i < n; i++ {
			cmd := exec.Command(os.Args[0], "sleep")
			if err := cmd.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println("grandchild", cmd.Process.Pid)
		}
		forever()
	case "print":
		d, _ := time.ParseDuration(arg(2, "10ms"))
		for i := 0; ; i++ {
			fmt.Printf("out %d\n", i)
			fmt.Fprintf(os.Stderr, "err %d\n", i)
			time.Sleep(d)
		}
	case "lines":
		n, _ := strconv.Atoi(arg(2, "100"))
		d, _ := time.ParseDuration(arg(3, "0s"))
		for i := 0; i < n; i++ {
			fmt.Printf("out %d\n", i)
			if i%10 == 0 {
				fmt.Fprintf(os.Stderr, "err %d\n", i)
			}
			if d > 0 {
				time.Sleep(d)
			}
		}
		forever()
	case "env":
		wd, _ := os.Getwd()
		fmt.Printf("%s=%s\ndir=%s\n", arg(2, "HOME"), os.Getenv(arg(2, "HOME")), wd)
		forever()
	case "listen":
		l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv(arg(2, "PORT")))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("listening on", l.Addr())
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(1)
			}
			c.Close()
		}
	case "http":
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		addr := "127.0.0.1:" + os.Getenv(arg(2, "PORT"))
		fmt.Println("serving on", addr)
		fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, nil))
		os.Exit(1)
	case "spin":
		for {
			spinSink++
		}
	case "alloc":
		mb, _ := strconv.Atoi(arg(2, "100"))
		var chunks [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1 // touch every page, so it is resident
			}
			chunks = append(chunks, b)
		}
		keep = chunks // reachable while it sleeps
		fmt.Println("allocated", len(chunks), "MB")
		forever()
	case "limits":
		b, _ := os.ReadFile("/proc/self/limits")
		os.Stdout.Write(b)
		forever()
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// keep holds what alloc allocated, so the collector cannot free it.
var keep [][]byte

// spinSink keeps the busy loop from being optimised away.
var spinSink uint64

// forever blocks until the process is killed. A bare select{} would not: with
// no other goroutine the runtime reports a deadlock and exits with status 2.
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}
