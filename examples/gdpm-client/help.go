package main

// usageLines is the one-line synopsis printed under a usage error.
var usageLines = map[string]string{
	"":           "usage: gdpm-client [-addr URL] [-token TOKEN] [-ca-hash HASH] [-o table|json] get|create|apply|diff|update|scale|stop|start|restart|delete|logs|events|version|completion|help ...",
	"get":        "usage: gdpm-client get [-w] nodes | node ID | services | service SERVICE",
	"create":     "usage: gdpm-client create [-name NAME] [-r N] [-e KEY=VAL]... [-dir DIR] [-restart always|on-failure|never] [-stop-timeout D] [--] COMMAND...",
	"apply":      "usage: gdpm-client apply -f FILE|-",
	"diff":       "usage: gdpm-client diff -f FILE|-",
	"update":     "usage: gdpm-client update -r N SERVICE",
	"scale":      "usage: gdpm-client scale SERVICE N",
	"stop":       "usage: gdpm-client stop SERVICE...",
	"start":      "usage: gdpm-client start SERVICE...",
	"restart":    "usage: gdpm-client restart SERVICE...",
	"delete":     "usage: gdpm-client delete SERVICE...",
	"logs":       "usage: gdpm-client logs [-f] [-t] [-n N] [-instance ID] SERVICE",
	"events":     "usage: gdpm-client events [-since REVISION]",
	"version":    "usage: gdpm-client version",
	"completion": "usage: gdpm-client completion bash|zsh|fish",
	"help":       "usage: gdpm-client help [VERB]",
}

const globalFlags = `Global flags (anywhere on the line, before "--"):
  -addr URL       the master's API (env GDPM_ADDR, default http://127.0.0.1:8989);
                  "host:port" means http://host:port
  -token TOKEN    the cluster token, sent as "Authorization: Bearer TOKEN"
                  (env GDPM_TOKEN; prefer the variable: flags show in ps)
  -ca-hash HASH   trust an https:// master whose certificate chains to the
                  cluster CA with this hash, sha256:HEX as the master prints
                  it (env GDPM_CA_HASH)
  -tls-ca FILE    trust the CAs in this PEM file instead (env GDPM_TLS_CA);
                  with either, -addr defaults to https://127.0.0.1:8989 and
                  "host:port" means https://host:port
  -o FORMAT       table (default) or json: the API's own JSON, indented;
                  yaml for get service(s): an appliable spec file
  -h, -help       print help for the verb and exit
`

// helpTexts are the pages of "gdpm-client [VERB] -h", printed on stdout.
var helpTexts = map[string]string{
	"": `gdpm-client drives a gdpm cluster through a master's HTTP API.

Usage:
  gdpm-client [flags] VERB [ARGS] [flags]

Verbs:
  get nodes                 list the nodes (slaves)
  get node ID               list the services placed on node ID
  get services              list the services
  get service SERVICE       show a service and every one of its instances
  get -w ...                the same, redrawn on every change until interrupted
  create [flags] COMMAND... start a service running COMMAND; prints its ID
  apply -f FILE             create or update the services of a spec file
  diff -f FILE              show what apply would change
  update -r N SERVICE       scale a service to N instances
  scale SERVICE N           the same
  stop SERVICE...           stop every instance; the instance count is kept
  start SERVICE...          start a stopped service again
  restart SERVICE...        replace every instance, one at a time
  delete SERVICE...         stop every instance of a service and remove it
  logs [-f] [-n N] SERVICE  print the service's output; -f follows it
  events [-since REVISION]  follow the cluster's events until interrupted
  version                   print the gdpm version (no network)
  completion SHELL          print a completion script for bash, zsh or fish
  help [VERB]               print help for VERB, as "VERB -h" does

` + globalFlags + `
SERVICE is a service's name, its id, or the first 4 or more characters of
its id when no other service's id starts with them.

Flags may come before or after the other words: "update ID -r 2" is
"update -r 2 ID". Every word after "--" is an argument, never a flag.

Exit status: 0 done, 1 the request failed (the message says why),
2 bad command line, 130 interrupted ("logs -f" and "get -w" exit 0: an
interrupt is how they end).

Examples:
  gdpm-client get nodes
  gdpm-client create -r 3 -e PORT=8080 -- python3 -u /srv/app.py --port 8080
  gdpm-client update 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c -r 5
  gdpm-client logs -f 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
  gdpm-client get services -w
  GDPM_ADDR=http://master:8989 gdpm-client -o json get services
  source <(gdpm-client completion bash)
`,

	"get": `Usage:
  gdpm-client get [-w] nodes        list the nodes
  gdpm-client get [-w] node ID      list the services placed on node ID
  gdpm-client get [-w] services     list the services
  gdpm-client get [-w] service SERVICE   show a service and its instances
  gdpm-client get service SERVICE -o yaml   print it as an appliable spec
  gdpm-client get services -o yaml          every named service, as a spec file

SERVICE is a name, an id, or a unique id prefix of 4 or more characters.

A node's STATUS is online (1) or draining (2, shutting down: its instances
are moving away). Commands longer than 50 characters are shortened in
tables; -o json prints them whole, along with every other field.

Flags:
  -w                watch: print the result again after every change in
                    the cluster (it follows the master's event stream, as
                    "events" does; it does not poll), until interrupted
                    (Ctrl-C), which exits 0. On a terminal each frame
                    replaces the one before; elsewhere frames follow each
                    other under a header line. If the stream breaks, -w
                    resumes where it stopped once a master answers again.

` + globalFlags + `
Examples:
  gdpm-client get nodes
  gdpm-client get service 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
  gdpm-client get services -o json
  gdpm-client get service web -o yaml > web.yaml
  gdpm-client get -w service 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
`,

	"create": `Usage:
  gdpm-client create [flags] [--] COMMAND...

Create a service that runs COMMAND on the cluster's nodes, and print its ID.

Flags:
  -name NAME        the service's name: unique, 1 to 63 lower-case letters,
                    digits and '-' (optional)
  -r N, -replicas N instances to run (default 1; 0 creates it stopped)
  -e KEY=VAL        set an environment variable; repeat for more
  -dir DIR          working directory on the nodes (an absolute path)
  -restart POLICY   always (default), on-failure or never
  -stop-timeout D   how long a stop waits after SIGTERM before SIGKILL,
                    such as 30s or 1m (default 10s)

The command:
  Flags are recognized anywhere until "--"; every word after "--" belongs
  to the command. Put "--" before a command that has words starting
  with "-".
  One word is sent as it is and the node runs it with /bin/sh, so quote a
  whole command line to use pipes, redirections or variables on the node.
  Several words are joined with spaces, single-quoting any word with
  spaces or shell characters so that it reaches the program as one
  argument.

` + globalFlags + `
Examples:
  gdpm-client create -r 3 python3 /srv/app.py
  gdpm-client create -r 2 -e PORT=8080 -restart on-failure -- python3 -u /srv/app.py --port 8080
  gdpm-client create -dir /srv 'exec ./app >> /var/log/app.log 2>&1'
  gdpm-client create -restart never -- sh -c 'sleep 5; exit 3'
`,

	"update": `Usage:
  gdpm-client update -r N SERVICE

Scale a service to N instances (-replicas N is the same). -r is required;
it may come before or after SERVICE. N = 0 stops every instance and keeps
the service. Scaling restarts no running instance: a scale-down removes
the instances with the highest indices.

` + globalFlags + `
Examples:
  gdpm-client update -r 5 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
  gdpm-client update 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c -r 0
`,

	"delete": `Usage:
  gdpm-client delete SERVICE...

Stop every instance of each service named and remove it. Deleting is
always explicit: apply never deletes a service missing from its file.

` + globalFlags + `
Examples:
  gdpm-client delete 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
  gdpm-client delete web worker
  gdpm-client delete -o json 9b2f
`,

	"apply": `Usage:
  gdpm-client apply -f FILE|-

Make the cluster's services match a spec file (YAML or JSON; "-" reads
standard input): one service or a list of them, each with a Name. A
service missing from the cluster is created; one whose spec, InstanceNum
or Rollout differs is updated: a changed spec rolls out one instance at a
time; a service already as the file says is left alone (nothing
restarts). Services not in the file are never deleted. One line per
service: "service NAME created", "updated" or "unchanged".

A spec file:
  - Name: web
    Command: python3 -u /srv/app.py
    InstanceNum: 2
    Env: {GREETING: hello}
    Ports: [http]

` + globalFlags + `
Examples:
  gdpm-client apply -f apps.yaml
  gdpm-client get service web -o yaml | gdpm-client apply -f -
`,

	"diff": `Usage:
  gdpm-client diff -f FILE|-

Show what "apply -f FILE" would change, service by service: the spec as
it stands ("-") and as the file has it ("+"), defaults spelt out; "no
changes" when there are none. It changes nothing. Exit status, as
diff(1): 0 no changes, 1 changes, 2 trouble (the file or a request
failed).

` + globalFlags + `
Examples:
  gdpm-client diff -f apps.yaml
`,

	"scale": `Usage:
  gdpm-client scale SERVICE N

Scale a service to N instances, as "update -r N SERVICE" does. No running
instance restarts.

` + globalFlags + `
Examples:
  gdpm-client scale web 5
`,

	"stop": `Usage:
  gdpm-client stop SERVICE...

Stop every instance of each service; the service and its instance count
are kept (its status is "stopped") until "start".

` + globalFlags + `
Examples:
  gdpm-client stop web
`,

	"start": `Usage:
  gdpm-client start SERVICE...

Start a stopped service again, with the instance count it had.

` + globalFlags + `
Examples:
  gdpm-client start web
`,

	"restart": `Usage:
  gdpm-client restart SERVICE...

Replace every instance of each service, one at a time, as a rollout does:
a new instance starts beside the old one and the old one stops once the
new one has run for MinReady (2s by default).

` + globalFlags + `
Examples:
  gdpm-client restart web
`,

	"logs": `Usage:
  gdpm-client logs [-f] [-t] [-n N] [-instance ID] SERVICE

Print what the instances of service SERVICE (its ID) wrote to stdout and
stderr: the last lines, then with -f the new lines as they are written.

Flags:
  -f                follow: keep printing new lines until interrupted
                    (Ctrl-C), which exits 0
  -t                print the time each line was captured on its node,
                    RFC 3339 in UTC with milliseconds, before it
  -n N              print the last N lines first, counted across every
                    instance and stream (default 100); with -n 0 none, so
                    "-f -n 0" prints only new lines
  -instance ID      only instance ID (the INSTANCE column of
                    "get service SERVICE")

One line a log line: the instance, "|" for a line written to stdout or "!"
for stderr, then the line; "*" marks where an instance's process started
or exited:
  04c18ab53747 * started (pid 4242)
  04c18ab53747 | listening on :8080
  04c18ab53747 ! warning: cache is cold
With -t:
  2026-12-01T15:04:05.123Z 04c18ab53747 | listening on :8080
Lines come in the order they were captured, every instance and stream
interleaved (with -f, lines captured within about 0.1 s of each other on
different nodes or streams may come out of order; each stream's own lines
never do).
Control characters other than tab are shown escaped (ESC as \x1b).
Instances still pending have no logs. With -f, logs follows the service
wherever it runs: an instance placed later (a scale-up, a move off a node
that left) joins with its own last N lines. Should the master end the
stream (it stopped), logs says so and exits 1.

With -o json each line is one JSON object on its own line, as the API's
GET /service/ID/logs sends it: Service, Instance, Node, Stream, Line,
Time (when captured) and, on a marker, Mark (started or exited).

` + globalFlags + `
Examples:
  gdpm-client logs 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
  gdpm-client logs -f -t -n 0 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
  gdpm-client logs -n 20 -instance 04c18ab53747 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
  gdpm-client logs -o json 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c | jq -r 'select(.Stream == "stderr") | .Line'
`,

	"events": `Usage:
  gdpm-client events [-since REVISION]

Follow what happens in the cluster, one event a line, until interrupted
(Ctrl-C): nodes joining and going, services created, scaled and deleted,
instances placed, queued, removed, started, exited, restarted, stopped and
failed. Every master serves the same events. Ids are shortened to their
first 8 characters, as the web interface shows them (-o json has them
whole).

Flags:
  -since REVISION   first print what happened after REVISION (the REVISION
                    column), then follow: resume where a previous run
                    stopped. Without it, start from now. A revision the
                    cluster no longer keeps is an error.

With -o json each event is one JSON object on its own line, as the API's
GET /events sends it.

` + globalFlags + `
Examples:
  gdpm-client events
  gdpm-client events -since 1042
  gdpm-client events -o json | jq -c 'select(.Type == "instance.exited")'
`,

	"completion": `Usage:
  gdpm-client completion bash|zsh|fish

Print a script that makes the shell complete gdpm-client's verbs, flags,
the values of -o and -restart, and, when the master can be reached (with
GDPM_ADDR and GDPM_TOKEN, or -addr and -token on the line being typed),
service and node ids. The script asks gdpm-client itself for the
candidates, so it stays right across upgrades.

` + globalFlags + `
Examples:
  gdpm-client completion bash > /etc/bash_completion.d/gdpm-client
  source <(gdpm-client completion bash)
  gdpm-client completion zsh > "${fpath[1]}/_gdpm-client"
  gdpm-client completion fish > ~/.config/fish/completions/gdpm-client.fish
`,

	"version": `Usage:
  gdpm-client version

Print the gdpm version this client was built from. It needs no master.

` + globalFlags + `
Examples:
  gdpm-client version
  gdpm-client version -o json
`,
}
