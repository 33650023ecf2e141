package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/capy-pl/gdpm"
)

// completeVerb is the hidden verb the shell scripts call: gdpm-client
// __complete WORD... prints the candidates for the last WORD (the one
// being typed, maybe empty), one a line, each optionally followed by a tab
// and a description. It never fails: no candidates is an empty answer.
const completeVerb = "__complete"

// completeTimeout bounds the reads of service and node ids: a shell waits
// for them while the user waits for the shell.
const completeTimeout = 2 * time.Second

// shells are the shells "completion" writes a script for.
var shells = []string{"bash", "zsh", "fish"}

// flagHelp describes each flag in a completion list.
var flagHelp = map[string]string{
	"addr":         "the master's API URL",
	"token":        "the cluster token",
	"ca-hash":      "pin of the cluster CA (sha256:HEX)",
	"tls-ca":       "PEM file of CAs to trust",
	"o":            "output: table or json",
	"h":            "help",
	"help":         "help",
	"r":            "instances",
	"e":            "KEY=VAL environment variable",
	"dir":          "working directory on the nodes",
	"restart":      "always, on-failure or never",
	"stop-timeout": "wait after SIGTERM before SIGKILL",
	"since":        "resume after this revision",
	"f":            "follow new lines",
	"n":            "last N lines first",
	"instance":     "only this instance",
	"t":            "print each line's time (UTC)",
	"w":            "watch: redraw on every change",
}

// flagValues are the values a flag can take, where they are few.
var flagValues = map[string][]string{
	"o":       {outTable, outJSON},
	"restart": {string(gdpm.RestartAlways), string(gdpm.RestartOnFailure), string(gdpm.RestartNever)},
}

// completeWords returns the candidates for the last of words (the command
// line after the program's name), given the rest. Service and node ids
// come from the master, found as the command line and environment say;
// when it cannot be reached there are none.
func completeWords(ctx context.Context, words []string, getenv func(string) string, connect func(gdpm.ClientConfig) (api, error)) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	prior, cur := words[:len(words)-1], words[len(words)-1]
	addr, token := getenv("GDPM_ADDR"), getenv("GDPM_TOKEN")
	caHash, tlsCA := getenv("GDPM_CA_HASH"), getenv("GDPM_TLS_CA")
	var pos []string
	afterDashes := false
	valueOf := "" // the flag whose value cur is
	for i := 0; i < len(prior); i++ {
		w := prior[i]
		if afterDashes || w == "-" || !strings.HasPrefix(w, "-") {
			pos = append(pos, w)
			continue
		}
		if w == "--" {
			afterDashes = true
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		def, ok := flagDefs[name]
		if !ok || !def.value || hasValue {
			switch {
			case !hasValue:
			case name == "addr":
				addr = value
			case name == "token":
				token = value
			case name == "ca-hash":
				caHash = value
			case name == "tls-ca":
				tlsCA = value
			}
			continue
		}
		if i+1 == len(prior) {
			valueOf = name
			break
		}
		i++
		switch name {
		case "addr":
			addr = prior[i]
		case "token":
			token = prior[i]
		case "ca-hash":
			caHash = prior[i]
		case "tls-ca":
			tlsCA = prior[i]
		}
	}
	verb := ""
	if len(pos) > 0 {
		verb = pos[0]
	}

	var cands []string
	switch {
	case valueOf != "":
		cands = flagValues[valueOf]
	case afterDashes:
		return nil // a command's words: the shell completes file names
	case strings.HasPrefix(cur, "-"):
		for name, def := range flagDefs {
			if name == "help" || def.verbs != nil && !slices.Contains(def.verbs, verb) {
				continue
			}
			cands = append(cands, "-"+name+"\t"+flagHelp[name])
		}
		sort.Strings(cands)
	case len(pos) == 0:
		cands = slices.Clone(verbs)
	default:
		cands = completeArgs(ctx, verb, pos[1:], func() (api, error) {
			if addr == "" {
				addr = gdpm.DefaultClientAddr
			}
			cfg := gdpm.ClientConfig{Addr: addr, Token: token, CAHash: caHash}
			if tlsCA != "" {
				var err error
				if cfg.RootCAs, err = gdpm.LoadCertPool(tlsCA); err != nil {
					return nil, err
				}
			}
			return connect(cfg)
		})
	}
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, cur) {
			out = append(out, c)
		}
	}
	return out
}

// completeArgs returns the candidates for the next positional word of
// verb after args.
func completeArgs(ctx context.Context, verb string, args []string, connect func() (api, error)) []string {
	switch {
	case verb == "get" && len(args) == 0:
		return []string{"nodes", "node", "services", "service"}
	case verb == "get" && len(args) == 1 && args[0] == "node":
		return nodeIDs(ctx, connect)
	case verb == "get" && len(args) == 1 && args[0] == "service",
		(verb == "update" || verb == "scale" || verb == "logs") && len(args) == 0,
		verb == "delete" || verb == "stop" || verb == "start" || verb == "restart":
		return serviceIDs(ctx, connect)
	case verb == "help" && len(args) == 0:
		return slices.Clone(verbs)
	case verb == "completion" && len(args) == 0:
		return slices.Clone(shells)
	}
	return nil
}

func serviceIDs(ctx context.Context, connect func() (api, error)) []string {
	c, err := connect()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	list, err := c.Services(ctx)
	if err != nil {
		return nil
	}
	out := make([]string, 0, 2*len(list))
	for _, s := range list {
		if s.Name != "" {
			// The name first: it is what a user types.
			out = append(out, s.Name+"\t"+oneLine(s.Command))
		}
	}
	for _, s := range list {
		out = append(out, s.ID+"\t"+oneLine(s.Command))
	}
	return out
}

func nodeIDs(ctx context.Context, connect func() (api, error)) []string {
	c, err := connect()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	l, err := c.Nodes(ctx)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(l.Ids))
	for i, id := range l.Ids {
		out = append(out, id+"\t"+statusWord(at(l.Status, i, -1)))
	}
	return out
}

// oneLine is s as a description: one short line without tabs.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 40 {
		s = string(r[:39]) + "…"
	}
	return s
}

// runComplete is "gdpm-client __complete WORD...".
func runComplete(ctx context.Context, words []string, stdout io.Writer, getenv func(string) string,
	connect func(gdpm.ClientConfig) (api, error)) int {
	for _, c := range completeWords(ctx, words, getenv, connect) {
		fmt.Fprintln(stdout, c)
	}
	return exitOK
}

// completionScript is the script "gdpm-client completion SHELL" prints.
// Each script asks the program itself (__complete) for the candidates, so
// the three shells complete alike, and calls it by the name the user
// typed, so it also works for ./gdpm-client.
func completionScript(shell string) string {
	switch shell {
	case "bash":
		return bashCompletion
	case "zsh":
		return zshCompletion
	case "fish":
		return fishCompletion
	}
	return ""
}

const bashCompletion = `# bash completion for gdpm-client: source it, or put it in
# /etc/bash_completion.d/ (gdpm-client completion bash > FILE).
_gdpm_client() {
    local prog=${COMP_WORDS[0]/#\~/$HOME}
    local out line
    out=$("$prog" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
    COMPREPLY=()
    while IFS= read -r line; do
        [[ -n $line ]] && COMPREPLY+=("${line%%$'\t'*}")
    done <<<"$out"
    if [[ ${#COMPREPLY[@]} -eq 0 ]]; then
        compopt -o default 2>/dev/null
    fi
    return 0
}
complete -F _gdpm_client gdpm-client
`

const zshCompletion = `#compdef gdpm-client
# zsh completion for gdpm-client: put it in a directory of $fpath as
# _gdpm-client, or source it after compinit.
compdef _gdpm_client gdpm-client

_gdpm_client() {
    local -a lines vals descs
    local line
    lines=("${(@f)$("${words[1]/#\~/$HOME}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    for line in "${lines[@]}"; do
        [[ -z $line ]] && continue
        vals+=("${line%%$'\t'*}")
        if [[ $line == *$'\t'* ]]; then
            descs+=("${line%%$'\t'*} -- ${line#*$'\t'}")
        else
            descs+=("$line")
        fi
    done
    if (( ${#vals} == 0 )); then
        _files
        return
    fi
    compadd -l -d descs -a vals
}

# Autoloaded from $fpath, this file is the function's first call.
if [[ $funcstack[1] == _gdpm_client || $funcstack[1] == _gdpm-client ]]; then
    _gdpm_client "$@"
fi
`

const fishCompletion = `# fish completion for gdpm-client: put it in
# ~/.config/fish/completions/gdpm-client.fish, or source it.
function __gdpm_client_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    $words[1] __complete $words[2..-1] $cur 2>/dev/null
end
complete -c gdpm-client -f -a '(__gdpm_client_complete)'
`
