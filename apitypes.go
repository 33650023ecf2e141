package gdpm

import "time"

// The JSON shapes of the HTTP API. NodeList and NodeServices are the seed
// API's parallel arrays and never change shape; the rest are gdpm's own.

// NodeList is the body of GET /node/: index i of every array describes the
// same node.
type NodeList struct {
	Ids        []string `json:"Ids"`
	ServiceNum []int    `json:"ServiceNum"`
	Status     []int    `json:"Status"`
	Times      []string `json:"Times"` // registration time, time.RFC822
}

// NodeServices is the body of GET /node/:id/: one entry per service with
// instances on the node.
type NodeServices struct {
	Command []string `json:"Command"`
	Ids     []string `json:"Ids"`
	Number  []int    `json:"Number"`
}

// CreateRequest is the body of POST /service/. A missing InstanceNum means 1.
type CreateRequest struct {
	Command     string            `json:"Command"`
	InstanceNum *int              `json:"InstanceNum,omitempty"`
	Env         map[string]string `json:"Env,omitempty"`
	Dir         string            `json:"Dir,omitempty"`
	Restart     RestartPolicy     `json:"Restart,omitempty"`
	StopTimeout Duration          `json:"StopTimeout,omitempty"`
}

// ScaleRequest is the body of POST /service/:id/.
type ScaleRequest struct {
	InstanceNum *int `json:"InstanceNum"`
}

// ServiceSummary is one entry of GET /service/.
type ServiceSummary struct {
	ID          string        `json:"ID"`
	Command     string        `json:"Command"`
	InstanceNum int           `json:"InstanceNum"` // desired
	Running     int           `json:"Running"`
	Pending     int           `json:"Pending"` // waiting for a node
	Restart     RestartPolicy `json:"Restart"`
	CreatedAt   time.Time     `json:"CreatedAt"`
}

// ServiceList is the body of GET /service/.
type ServiceList struct {
	Services []ServiceSummary `json:"Services"`
}

// InstanceInfo is one instance in GET /service/:id/.
type InstanceInfo struct {
	ID        string        `json:"ID"`
	Node      string        `json:"Node"` // empty while pending
	State     InstanceState `json:"State"`
	PID       int           `json:"PID,omitempty"`
	ExitCode  *int          `json:"ExitCode,omitempty"`
	Restarts  int           `json:"Restarts"`
	StartedAt time.Time     `json:"StartedAt,omitzero"`
	Error     string        `json:"Error,omitempty"`
}

// ServiceDetail is the body of GET /service/:id/.
type ServiceDetail struct {
	Service
	Running   int            `json:"Running"`
	Pending   int            `json:"Pending"`
	Instances []InstanceInfo `json:"Instances"`
}

// errorBody is every error answer: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}
